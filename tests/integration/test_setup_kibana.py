"""``appmixer-audit setup --kibana-url``: templates on a real node, then the dashboards
imported into the local server that enforces Kibana's import contract (tests/kibana_server.py,
not Kibana: Kibana cannot run here)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

import indexer.kibana
from cli import cli
from indexer.kibana import bundled_objects
from tests.kibana_server import KibanaContract, kibana_contract_server

pytestmark = [pytest.mark.integration, pytest.mark.compat]

SHIPPED = len([line for line in bundled_objects().decode().splitlines() if line.strip()])


def setup(es_url: str, namespace: str, *args: str, env: dict[str, str] | None = None) -> Result:
    argv = ["setup", "--es-url", es_url, "--namespace", namespace, "--kibana-wait", "5", *args]
    return CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)


@pytest.fixture
def kibana() -> Iterator[tuple[str, KibanaContract]]:
    with kibana_contract_server() as running:
        yield running


def kibana_lines(result: Result) -> list[str]:
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("kibana "))
    return lines[start:]


class TestSetupKibana:
    def test_imports_everything_then_updates_the_same(
        self, es_url: str, namespace: str, kibana: tuple[str, KibanaContract]
    ) -> None:
        """First run creates every object; the second updates the same ids, adds nothing."""
        url, contract = kibana
        first = setup(es_url, namespace, "--kibana-url", url)
        assert first.exit_code == 0, first.output
        summary, *objects = kibana_lines(first)
        assert summary.endswith(f"{SHIPPED} created, 0 updated, 0 errors")
        assert len(objects) == SHIPPED
        assert all(line.startswith("created") for line in objects)
        assert "created    dashboard:appmixer-audit-logs (Appmixer Audit Logs)" in objects
        stored = dict(contract.spaces["default"])
        assert len(stored) == SHIPPED

        second = setup(es_url, namespace, "--kibana-url", url)
        assert second.exit_code == 0, second.output
        assert kibana_lines(second)[0].endswith(f"0 created, {SHIPPED} updated, 0 errors")
        assert contract.spaces["default"] == stored
        assert second.stderr == ""

    def test_json_report_and_space(self, es_url: str, namespace: str) -> None:
        """--format json carries the Kibana counts; --kibana-space imports into that space."""
        contract = KibanaContract(spaces={"default": {}, "sre": {}})
        with kibana_contract_server(contract) as (url, state):
            args = ["--kibana-url", url, "--kibana-space", "sre", "--format", "json"]
            result = setup(es_url, namespace, *args)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is True
        assert report["kibana"]["created"] == SHIPPED
        assert report["kibana"]["space"] == "sre"
        assert len(state.spaces["sre"]) == SHIPPED
        assert state.spaces["default"] == {}

    def test_missing_reference_is_one_line_and_exit_1(
        self,
        es_url: str,
        namespace: str,
        kibana: tuple[str, KibanaContract],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A file missing a data view: nothing imported, one stderr line naming it, exit 1."""
        url, contract = kibana
        kept = [
            line
            for line in bundled_objects().decode().splitlines()
            if not line.startswith('{"type":"index-pattern","id":"appmixer-audit-events"')
        ]
        broken = ("\n".join(kept) + "\n").encode()
        monkeypatch.setattr(indexer.kibana, "bundled_objects", lambda: broken)
        result = setup(es_url, namespace, "--kibana-url", url)
        assert result.exit_code == 1
        assert contract.spaces["default"] == {}
        (line,) = result.stderr.splitlines()
        assert line.startswith("appmixer-audit: Kibana import failed: nothing was imported;")
        assert "missing references: index-pattern:appmixer-audit-events" in line

    def test_refused_credentials_are_one_line_and_exit_1(self, es_url: str, namespace: str) -> None:
        """Kibana answering 401: one stderr line with the status, exit 1, no traceback."""
        with kibana_contract_server(KibanaContract(api_key="right-key")) as (url, state):
            result = setup(es_url, namespace, "--kibana-url", url)
            assert result.exit_code == 1
            (line,) = result.stderr.splitlines()
            assert line.startswith(f"appmixer-audit: Kibana at {url} refused the credentials (401)")
            env = {"APPMIXER_AUDIT_KIBANA_API_KEY": "right-key"}
            result = setup(es_url, namespace, "--kibana-url", url, env=env)
            assert result.exit_code == 0, result.output
            assert len(state.spaces["default"]) == SHIPPED

    def test_unknown_space_is_one_line_and_exit_1(
        self, es_url: str, namespace: str, kibana: tuple[str, KibanaContract]
    ) -> None:
        """A 404 for a space Kibana does not have: one line with Kibana's message."""
        url, _contract = kibana
        result = setup(es_url, namespace, "--kibana-url", url, "--kibana-space", "nowhere")
        assert result.exit_code == 1
        (line,) = result.stderr.splitlines()
        assert line.startswith("appmixer-audit: Kibana refused the import (404")
        assert "space/nowhere" in line
