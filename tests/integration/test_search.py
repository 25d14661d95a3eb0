"""``appmixer-audit search`` against a real node, checked against the normalizer's output.

Each expectation is computed here in Python from the documents that were shipped, with the
rules the seed states (every filter must hold; newest first), and compared with what the
command printed, in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import cli
from indexer.search import EVENT_HEADERS, get_path
from tests.integration.conftest import Shipped

pytestmark = [pytest.mark.integration, pytest.mark.compat]

Doc = dict[str, Any]
Predicate = Callable[[Doc], bool]


def run(shipped: Shipped, *args: str) -> Result:
    return CliRunner().invoke(cli, ["search", *shipped.cli(), *args], catch_exceptions=False)


def json_ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [json.loads(line)["event"]["id"] for line in result.stdout.splitlines() if line]


def time_of(doc: Doc) -> datetime:
    return datetime.fromisoformat(doc["@timestamp"])


def expected(shipped: Shipped, *predicates: Predicate) -> list[str]:
    """Ids of the shipped events that pass every predicate, newest first, id as tiebreak."""
    docs = [item.event for item in shipped.events if all(p(item.event) for p in predicates)]
    millis = {id(doc): int(time_of(doc).timestamp() * 1000) for doc in docs}
    docs.sort(key=lambda doc: (millis[id(doc)], doc["event"]["id"]), reverse=True)
    return [doc["event"]["id"] for doc in docs]


# --- the oracle's filters, written from the seed's words, not from the query builder


def of_type(*types: str) -> Predicate:
    return lambda doc: doc["appmixer"]["audit"]["type"] in types


def by_user(user: str) -> Predicate:
    def check(doc: Doc) -> bool:
        email = get_path(doc, "user.email") or ""
        return email.lower() == user.lower() or get_path(doc, "user.id") == user

    return check


def in_flow(flow_id: str) -> Predicate:
    return lambda doc: get_path(doc, "appmixer.flow.id") == flow_id


def since(moment: datetime) -> Predicate:
    return lambda doc: time_of(doc) >= moment


def until(moment: datetime) -> Predicate:
    return lambda doc: time_of(doc) <= moment


_WORD = re.compile(r"[a-z0-9]+")


def has_word(word: str) -> Predicate:
    """A word of the action name, user or entity name, or the whole of an identifier."""

    def check(doc: Doc) -> bool:
        for name in ("message", "user.name", "appmixer.entity.name"):
            if word.lower() in _WORD.findall(str(get_path(doc, name) or "").lower()):
                return True
        identifiers = (
            "event.action",
            "user.email",
            "user.name",
            "appmixer.flow.id",
            "appmixer.entity.id",
            "appmixer.entity.name",
            "event.id",
        )
        if any(str(get_path(doc, name)).lower() == word.lower() for name in identifiers):
            return True
        mentioned = get_path(doc, "appmixer.related.id") or []
        return word.lower() in (value.lower() for value in mentioned)

    return check


# --- values picked from the input (the busiest ones, so each filter selects a real subset)


def busiest(shipped: Shipped, name: str) -> str:
    counts: dict[str, int] = {}
    for item in shipped.events:
        value = get_path(item.event, name)
        if value:
            counts[value] = counts.get(value, 0) + 1
    return max(sorted(counts), key=lambda value: counts[value])


def middle_time(shipped: Shipped, fraction: float) -> datetime:
    times = sorted(time_of(item.event) for item in shipped.events)
    return times[int(len(times) * fraction)]


class TestFilters:
    def test_no_filter_lists_every_event_newest_first(self, shipped: Shipped) -> None:
        """Without filters (the seed's RESET) every shipped event comes back, newest first."""
        ids = json_ids(run(shipped, "--all", "--size", "100", "--format", "json"))
        assert ids == expected(shipped)
        assert len(ids) == len(shipped.events) > 400

    @pytest.mark.parametrize("audit_type", ["create", "update", "delete", "access"])
    def test_type_alone(self, shipped: Shipped, audit_type: str) -> None:
        """--type keeps exactly the events of that type."""
        ids = json_ids(run(shipped, "--type", audit_type, "--all", "--format", "json"))
        assert ids == expected(shipped, of_type(audit_type))
        assert ids

    def test_user_by_email_and_by_id(self, shipped: Shipped) -> None:
        """--user matches the acting user's email (any case) or id, nothing else."""
        email = busiest(shipped, "user.email")
        ids = json_ids(run(shipped, "--user", email.upper(), "--all", "--format", "json"))
        assert ids == expected(shipped, by_user(email))
        user_id = busiest(shipped, "user.id")
        ids = json_ids(run(shipped, "--user", user_id, "--all", "--format", "json"))
        assert ids == expected(shipped, by_user(user_id))
        assert ids

    def test_flow_id_alone(self, shipped: Shipped) -> None:
        """--flow-id keeps the events of exactly that flow."""
        flow = busiest(shipped, "appmixer.flow.id")
        ids = json_ids(run(shipped, "--flow-id", flow, "--all", "--format", "json"))
        assert ids == expected(shipped, in_flow(flow))
        assert len(ids) > 1

    def test_since_and_until_iso(self, shipped: Shipped) -> None:
        """--since and --until bound @timestamp inclusively; an offset is honoured."""
        start, end = middle_time(shipped, 0.3), middle_time(shipped, 0.6)
        local = start.astimezone(UTC).astimezone(datetime.now().astimezone().tzinfo)
        ids = json_ids(run(shipped, "--since", start.isoformat(), "--all", "--format", "json"))
        assert ids == expected(shipped, since(start))
        ids = json_ids(run(shipped, "--until", end.isoformat(), "--all", "--format", "json"))
        assert ids == expected(shipped, until(end))
        args = ["--since", local.isoformat(), "--until", end.isoformat()]
        ids = json_ids(run(shipped, *args, "--all", "--format", "json"))
        assert ids == expected(shipped, since(start), until(end))
        assert ids

    def test_since_relative(self, shipped: Shipped) -> None:
        """--since 200d means 200 days before now, as computed at the time of the call."""
        ids = json_ids(run(shipped, "--since", "200d", "--all", "--format", "json"))
        assert ids == expected(shipped, since(datetime.now(UTC) - timedelta(days=200)))

    @pytest.mark.parametrize(
        ("pick", "name"),
        [
            (lambda s: "cloned", "a word of the action"),
            (lambda s: "UPDATED", "a word of the action, any case"),
            (lambda s: busiest(s, "user.email"), "user email"),
            (lambda s: busiest(s, "appmixer.flow.id"), "flow id"),
            (lambda s: busiest(s, "appmixer.entity.id"), "entity id"),
            (lambda s: "flow.started", "action code"),
        ],
    )
    def test_full_text(self, shipped: Shipped, pick: Callable[[Shipped], str], name: str) -> None:
        """--query finds events by a word of the action, user email, flow id or entity id."""
        word = pick(shipped)
        ids = json_ids(run(shipped, "--query", word, "--all", "--format", "json"))
        assert ids == expected(shipped, has_word(word)), name
        assert ids

    def test_flow_id_fragment_matches_nothing(self, shipped: Shipped) -> None:
        """A piece of a flow id is not that flow: identifiers match whole."""
        flow = busiest(shipped, "appmixer.flow.id")
        fragment = flow.split("-")[0]
        result = run(shipped, "--query", fragment)
        assert result.exit_code == 0
        assert result.stdout.strip() == f"no events match (in {shipped.settings.events_target})"

    def test_combined_filters(self, shipped: Shipped) -> None:
        """Filters combine with AND: each combination returns exactly the events passing all."""
        flow = busiest(shipped, "appmixer.flow.id")
        email = busiest(shipped, "user.email")
        start, end = middle_time(shipped, 0.2), middle_time(shipped, 0.9)
        cases: list[tuple[list[str], list[Predicate]]] = [
            (["--type", "update", "--user", email], [of_type("update"), by_user(email)]),
            (["--type", "create", "--type", "delete"], [of_type("create", "delete")]),
            (
                ["--flow-id", flow, "--type", "update", "--since", start.isoformat()],
                [in_flow(flow), of_type("update"), since(start)],
            ),
            (
                ["--query", "flow", "--user", email, "--until", end.isoformat()],
                [has_word("flow"), by_user(email), until(end)],
            ),
            (
                [
                    *("--query", "flow updated", "--type", "update"),
                    *("--since", start.isoformat(), "--until", end.isoformat()),
                    *("--user", email),
                ],
                [
                    *(has_word("flow"), has_word("updated"), of_type("update")),
                    *(since(start), until(end), by_user(email)),
                ],
            ),
        ]
        for args, predicates in cases:
            ids = json_ids(run(shipped, *args, "--all", "--format", "json"))
            assert ids == expected(shipped, *predicates), args
            assert ids, args

    def test_nothing_matches(self, shipped: Shipped) -> None:
        """No match prints one clear line and exits 0."""
        result = run(shipped, "--user", "nobody@nowhere.example")
        assert result.exit_code == 0
        assert result.stdout == f"no events match (in {shipped.settings.events_target})\n"


class TestPagingAndOutput:
    def test_after_cursor_continues_where_the_page_ended(self, shipped: Shipped) -> None:
        """--size pages and the printed cursor, given to --after, yields the next slice."""
        everything = expected(shipped, of_type("update"))
        first = run(shipped, "--type", "update", "--size", "7", "--format", "json")
        assert json_ids(first) == everything[:7]
        cursor = re.fullmatch(r"next page: --after (\S+)\n", first.stderr)
        assert cursor is not None, first.stderr
        args = ["--type", "update", "--size", "7", "--after", cursor.group(1), "--format", "json"]
        second = run(shipped, *args)
        assert json_ids(second) == everything[7:14]

    def test_last_page_has_no_cursor(self, shipped: Shipped) -> None:
        """When the page holds the last match, no next-page cursor is printed."""
        count = len(expected(shipped, of_type("delete")))
        result = run(shipped, "--type", "delete", "--size", str(count), "--format", "json")
        assert len(json_ids(result)) == count
        assert "next page" not in result.stderr

    def test_json_lines_are_the_stored_documents(self, shipped: Shipped) -> None:
        """--format json prints each document as stored, with its _id as event.id."""
        result = run(shipped, "--all", "--size", "500", "--format", "json")
        for line in result.stdout.splitlines():
            document = json.loads(line)
            assert document == shipped.by_id[document["event"]["id"]].event

    def test_table_shows_action_user_created_event_id(self, shipped: Shipped) -> None:
        """The table has the seed's columns plus the event id, one row per event, in UTC."""
        result = run(shipped, "--size", "5")
        assert result.exit_code == 0
        header, *rows = result.stdout.splitlines()
        assert header.split("  ")[0] == EVENT_HEADERS[0]
        assert all(column in header for column in EVENT_HEADERS)
        newest = [shipped.by_id[event_id].event for event_id in expected(shipped)[:5]]
        assert len(rows) == 5
        for row, doc in zip(rows, newest, strict=True):
            created = time_of(doc).astimezone(UTC).isoformat(timespec="milliseconds")
            assert row.startswith(doc["message"])
            assert created.replace("+00:00", "Z") in row
            assert row.endswith(doc["event"]["id"])

    def test_bad_time_is_a_usage_error(self, shipped: Shipped) -> None:
        """An unreadable --since is refused before any request, with exit status 2."""
        result = run(shipped, "--since", "last tuesday")
        assert result.exit_code == 2
        assert "--since" in result.output
