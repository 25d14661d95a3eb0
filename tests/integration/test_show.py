"""``appmixer-audit show`` against a real node: an event's details and its diff, row for row."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner, Result
from elasticsearch import Elasticsearch

from agent.normalize import Normalized
from cli import cli
from indexer.search import DIFF_HEADERS, fetch_changes
from tests.integration.conftest import Shipped

pytestmark = [pytest.mark.integration, pytest.mark.compat]

FLOW_UPDATED = "6745a1f0c1d2e3f405060702"  # the sample's "Flow Updated", with before and after
PASSWORD_CHANGED = "6745a1f0c1d2e3f405060706"  # the sample's "Password Changed"


def run(shipped: Shipped, *args: str) -> Result:
    return CliRunner().invoke(cli, ["show", *shipped.cli(), *args], catch_exceptions=False)


def diff_table(output: str) -> list[list[str]]:
    """The rows under the diff header, split on the two-space column gaps."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == list(DIFF_HEADERS))
    header = lines[start]
    edges = [header.index(name) for name in DIFF_HEADERS] + [None]
    return [
        [line[edges[i] : edges[i + 1]].strip() for i in range(len(DIFF_HEADERS))]
        for line in lines[start + 1 :]
    ]


def expected_rows(item: Normalized) -> list[list[str]]:
    return [
        [
            change["appmixer"]["change"]["path"],
            change["appmixer"]["change"]["op"],
            change["appmixer"]["change"].get("old", ""),
            change["appmixer"]["change"].get("new", ""),
        ]
        for _id, change in item.changes
    ]


class TestShow:
    def test_update_event_diff_row_for_row(self, shipped: Shipped) -> None:
        """An update's diff is printed in diff order with path, change, old and new."""
        result = run(shipped, FLOW_UPDATED)
        assert result.exit_code == 0, result.output
        rows = diff_table(result.stdout)
        assert rows == expected_rows(shipped.by_id[FLOW_UPDATED])
        assert rows[0] == ["/name", "replace", "Sync leads", "Sync leads to CRM"]
        assert ["/flow/a1/config/interval", "replace", "15", "5"] in rows

    def test_details_come_before_the_diff(self, shipped: Shipped) -> None:
        """The details name the action, type, user, time and flow of the event."""
        result = run(shipped, FLOW_UPDATED)
        block = result.stdout.split("\n\n")[0]
        details = dict(re.findall(r"^(.+?) {2,}(.*)$", block, flags=re.MULTILINE))
        assert details["Event ID"] == FLOW_UPDATED
        assert details["Action"] == "Flow Updated (flow.updated)"
        assert details["Type"] == "update"
        assert details["Created (UTC)"] == "2026-11-25T09:20:41.007Z"
        assert details["User"] == "maria.novak@acme.example (5f0c1e2d3b4a596877665544)"
        assert details["Flow"] == "9c4673d7-a550-45a2-91c1-ad057fac0385"
        assert details["Changes"] == "3"

    def test_password_change_is_shown_changed_and_redacted(self, shipped: Shipped) -> None:
        """A password change shows the field as replaced, with both values redacted."""
        result = run(shipped, PASSWORD_CHANGED)
        assert result.exit_code == 0, result.output
        assert diff_table(result.stdout) == [["/password", "replace", "[REDACTED]", "[REDACTED]"]]
        assert "$2b$10$" not in result.stdout

    def test_json_has_the_event_and_its_changes(self, shipped: Shipped) -> None:
        """--format json prints the stored event and its change documents in diff order."""
        result = run(shipped, FLOW_UPDATED, "--format", "json")
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        item = shipped.by_id[FLOW_UPDATED]
        assert shown["event"] == item.event
        assert shown["changes"] == [change for _id, change in item.changes]

    def test_long_diff_is_complete_and_ordered(self, shipped: Shipped) -> None:
        """The event with the longest diff gets every change, ordered by change.index."""
        item = max(shipped.events, key=lambda candidate: len(candidate.changes))
        assert len(item.changes) >= 3
        shown = json.loads(run(shipped, item.event_id, "--format", "json").stdout)
        assert [c["appmixer"]["change"]["index"] for c in shown["changes"]] == list(
            range(len(item.changes))
        )
        assert shown["changes"] == [change for _id, change in item.changes]

    def test_changes_are_paged_in_order(self, es: Elasticsearch, shipped: Shipped) -> None:
        """Reading the change documents page by page loses none and keeps diff order."""
        item = max(shipped.events, key=lambda candidate: len(candidate.changes))
        target = shipped.settings.changes_target
        found = fetch_changes(es, target, item.event_id, page_size=2)
        assert found == [change for _id, change in item.changes]

    def test_event_without_changes(self, shipped: Shipped) -> None:
        """An event with no diff (a login) says so instead of printing an empty table."""
        item = next(i for i in shipped.events if i.event["event"]["action"] == "user.login")
        result = run(shipped, item.event_id)
        assert result.exit_code == 0
        assert "Diff: no changes recorded for this event" in result.stdout

    def test_unknown_id_fails_clearly(self, shipped: Shipped) -> None:
        """An id no event has is one line on stderr and exit status 1."""
        result = run(shipped, "no-such-event")
        assert result.exit_code == 1
        target = shipped.settings.events_target
        assert result.stderr == f"no event with id no-such-event in {target}\n"
        assert result.stdout == ""
