"""Importing the dashboards, against the local server that enforces Kibana's import contract
(tests/kibana_server.py; it is not Kibana, which cannot run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import urllib3

from agent.config import load_settings
from agent.errors import ConfigError
from devtools import rules as rule_source
from indexer.kibana import (
    Auth,
    Kibana,
    KibanaError,
    bundled_objects,
    import_dashboards,
    multipart,
    with_apply_button,
)
from tests.kibana_server import KibanaContract, kibana_contract_server


def shipped_keys() -> set[tuple[str, str]]:
    return {
        (obj["type"], obj["id"]) for obj in map(json.loads, bundled_objects().decode().splitlines())
    }


def no_sleep(_seconds: float) -> None:
    return


def run(url: str, **kwargs: Any) -> Any:
    auth = kwargs.pop("auth", None)
    return import_dashboards(Kibana(url, auth=auth), sleep=no_sleep, **kwargs)


def missing_data_view() -> bytes:
    """The shipped file without the changes data view, which the changes search needs."""
    lines = [
        line
        for line in bundled_objects().decode().splitlines()
        if not line.startswith('{"type":"index-pattern","id":"appmixer-audit-changes"')
    ]
    return ("\n".join(lines) + "\n").encode()


class TestImport:
    def test_first_import_creates_everything(self) -> None:
        """Every shipped object is created, in the default space, with its fixed id."""
        with kibana_contract_server() as (url, contract):
            report = run(url)
        assert report.ok
        assert report.count("created") == len(shipped_keys())
        assert set(contract.spaces["default"]) == shipped_keys()
        assert report.lines()[0].endswith(f"{len(shipped_keys())} created, 0 updated, 0 errors")

    def test_second_import_updates_the_same_objects(self) -> None:
        """Run twice: the same ids, all updated, nothing added (overwrite, never copies)."""
        with kibana_contract_server() as (url, contract):
            run(url)
            before = dict(contract.spaces["default"])
            report = run(url)
        assert report.ok
        assert report.count("updated") == len(shipped_keys())
        assert report.count("created") == 0
        assert contract.spaces["default"] == before
        assert ("POST", "/api/saved_objects/_import?overwrite=true") in contract.requests

    def test_space(self) -> None:
        """A space other than default goes under /s/<space>; an unknown one is refused."""
        contract = KibanaContract(spaces={"default": {}, "sre": {}})
        with kibana_contract_server(contract) as (url, state):
            report = run(url, space="sre")
            assert report.ok
            assert set(state.spaces["sre"]) == shipped_keys()
            assert state.spaces["default"] == {}
            with pytest.raises(KibanaError, match=r"refused the import \(404"):
                run(url, space="nowhere")

    def test_space_ids_are_checked_before_any_request(self) -> None:
        """A space id Kibana could never have is a configuration error, not a request."""
        with pytest.raises(ConfigError, match=r"invalid setting kibana_space .*space id"):
            load_settings(kibana_space="SRE Team")
        argv = ["setup", "--kibana-url", "http://127.0.0.1:1", "--kibana-space", "A B"]
        result = subprocess.run(
            [sys.executable, "-m", "agent", *argv], capture_output=True, text=True, check=False
        )
        assert result.returncode == 2
        (line,) = result.stderr.splitlines()
        assert line.startswith("appmixer-audit: invalid setting kibana_space")

    def test_missing_reference_imports_nothing(self) -> None:
        """A missing data view: the object that needs it is named, and nothing is stored."""
        with kibana_contract_server() as (url, contract):
            report = run(url, ndjson=missing_data_view())
        assert not report.ok
        assert contract.spaces["default"] == {}
        assert report.count("created") == report.count("updated") == 0
        summary = report.summary()
        assert summary.startswith("Kibana import failed: nothing was imported;")
        assert "missing references: index-pattern:appmixer-audit-changes" in summary
        assert "\n" not in summary

    def test_waits_until_available(self) -> None:
        """503 while starting, then available: the import happens once Kibana is up."""
        with kibana_contract_server(KibanaContract(unavailable_polls=3)) as (url, contract):
            report = run(url)
        assert report.ok
        assert [r for r in contract.requests if r[0] == "GET"] == [("GET", "/api/status")] * 4

    def test_gives_up_when_never_available(self) -> None:
        """Still unavailable at the deadline: one line that says so."""
        contract = KibanaContract(unavailable_polls=10**6)
        with kibana_contract_server(contract) as (url, _state):
            kibana = Kibana(url)
            with pytest.raises(KibanaError, match=r"not available within 0s \(status 503"):
                import_dashboards(kibana, wait=0, sleep=no_sleep)

    def test_unreachable(self) -> None:
        """No server at all: one line naming the URL."""
        with kibana_contract_server() as (url, _state):
            pass  # stopped: the port refuses connections now
        with pytest.raises(KibanaError, match=r"not available within 0s .*cannot reach Kibana"):
            import_dashboards(Kibana(url, timeout=2), wait=0, sleep=no_sleep)


class TestAuth:
    def test_api_key(self) -> None:
        """An API key is sent as ``Authorization: ApiKey``."""
        with kibana_contract_server(KibanaContract(api_key="aWQ6a2V5")) as (url, _state):
            assert run(url, auth=Auth(api_key="aWQ6a2V5")).ok

    def test_basic(self) -> None:
        """A user and password are sent as basic auth."""
        contract = KibanaContract(username="elastic", password="s3cret")
        with kibana_contract_server(contract) as (url, _state):
            assert run(url, auth=Auth(username="elastic", password="s3cret")).ok

    def test_refused_credentials(self) -> None:
        """Wrong credentials fail at once with the status, not after the whole wait."""
        with (
            kibana_contract_server(KibanaContract(api_key="right")) as (url, _state),
            pytest.raises(KibanaError, match=r"refused the credentials \(401\)"),
        ):
            run(url, auth=Auth(api_key="wrong"))


class TestApplyButton:
    def test_on_from_8_14(self) -> None:
        """From Kibana 8.14 the dashboards' controls get the Apply button."""
        with kibana_contract_server(KibanaContract(version="8.17.2")) as (url, contract):
            assert run(url).ok
        dashboard = contract.spaces["default"][("dashboard", "appmixer-audit-logs")]
        assert dashboard["attributes"]["controlGroupInput"]["showApplySelections"] is True

    @pytest.mark.parametrize("version", ["8.11.0", "8.13.4", "not-a-version"])
    def test_left_out_before(self, version: str) -> None:
        """Before 8.14 (whose schema refuses the key) the file goes as it is."""
        assert with_apply_button(bundled_objects(), version) == bundled_objects()


class TestContractServer:
    """The server refuses what Kibana refuses, so the client is tested against the contract."""

    def post(self, url: str, body: bytes, content_type: str, **headers: str) -> Any:
        return urllib3.request(
            "POST",
            url + "/api/saved_objects/_import?overwrite=true",
            body=body,
            headers={"content-type": content_type, **headers},
        )

    def test_needs_kbn_xsrf(self) -> None:
        with kibana_contract_server() as (url, _state):
            body, content_type = multipart(bundled_objects())
            response = self.post(url, body, content_type)
        assert response.status == 400
        assert "kbn-xsrf" in response.json()["message"]

    def test_needs_an_ndjson_file_name(self) -> None:
        with kibana_contract_server() as (url, _state):
            body, content_type = multipart(bundled_objects(), filename="objects.json")
            response = self.post(url, body, content_type, **{"kbn-xsrf": "x"})
        assert response.status == 400
        assert response.json()["message"] == "Invalid file extension .json"

    def test_refuses_repeated_objects(self) -> None:
        first = bundled_objects().decode().splitlines()[0]
        with kibana_contract_server() as (url, _state):
            body, content_type = multipart(f"{first}\n{first}\n".encode())
            response = self.post(url, body, content_type, **{"kbn-xsrf": "x"})
        assert response.status == 400
        assert response.json()["message"].startswith("Non-unique import objects detected")


class TestCredentials:
    def test_kibana_credentials_win_and_elasticsearch_ones_are_the_fallback(self) -> None:
        """KIBANA_* credentials are used when set; otherwise the Elasticsearch ones."""
        from cli.kibana import kibana_auth

        own = load_settings(kibana_api_key="a2liYW5h", es_api_key="ZXM=")
        assert kibana_auth(own).header() == {"authorization": "ApiKey a2liYW5h"}
        shared = load_settings(es_username="elastic", es_password="pw")
        assert kibana_auth(shared) == Auth(username="elastic", password="pw")

    def test_api_key_from_a_file(self, tmp_path: Any) -> None:
        """KIBANA_API_KEY_FILE reads the key from a file, as the ES secrets do."""
        from cli.kibana import kibana_auth

        secret = tmp_path / "kibana.key"
        secret.write_text("ZmlsZTprZXk=\n")
        secret.chmod(0o600)
        settings = load_settings(kibana_api_key_file=secret)
        assert kibana_auth(settings).api_key == "ZmlsZTprZXk="


def with_drilldown() -> bytes:
    """The shipped file with a dashboard drilldown on the events panel (and its reference)."""
    lines = []
    for line in bundled_objects().decode().splitlines():
        obj = json.loads(line)
        if obj["type"] == "dashboard" and obj["id"] == "appmixer-audit-logs":
            panels = json.loads(obj["attributes"]["panelsJSON"])
            drilldown = "DASHBOARD_TO_DASHBOARD_DRILLDOWN"
            event = {"eventId": "open", "triggers": ["FILTER_TRIGGER"],
                     "action": {"factoryId": drilldown, "config": {}}}  # fmt: skip
            dynamic = {"dynamicActions": {"events": [event]}}
            panels[2]["embeddableConfig"]["enhancements"] = dynamic
            obj["attributes"]["panelsJSON"] = json.dumps(panels)
            name = f"{panels[2]['panelIndex']}:drilldown:{drilldown}:open:dashboardId"
            obj["references"].append(
                {"type": "dashboard", "id": "appmixer-audit-event", "name": name}
            )
        lines.append(json.dumps(obj))
    return ("\n".join(lines) + "\n").encode()


class TestPageRules:
    def test_a_broken_page_is_refused(self) -> None:
        """A drilldown instead of the link: the dashboard is that object's error, so the
        import (and ``setup``) fails; the other objects are created."""
        with kibana_contract_server() as (url, contract):
            report = run(url, ndjson=with_drilldown())
        assert not report.ok
        [error] = report.errors
        assert (error.type, error.id) == ("dashboard", "appmixer-audit-logs")
        assert "[link]" in error.reason
        assert ("dashboard", "appmixer-audit-logs") not in contract.spaces["default"]
        assert len(contract.spaces["default"]) == len(shipped_keys()) - 1

    def test_kibana_itself_imports_it(self) -> None:
        """Without the page rules the server answers as Kibana does: imported."""
        with kibana_contract_server(KibanaContract(page_rules=False)) as (url, _contract):
            assert run(url, ndjson=with_drilldown()).ok


RULES_FILE = rule_source.IMPORT_FILE


def import_rules(url: str, ndjson: bytes) -> Any:
    body, content_type = multipart(ndjson, "appmixer-audit-rules.ndjson")
    response = urllib3.request(
        "POST",
        url + "/api/detection_engine/rules/_import?overwrite=true",
        body=body,
        headers={"content-type": content_type, "kbn-xsrf": "true"},
    )
    assert response.status == 200
    return response.json()


def rules_edited(change: Any) -> bytes:
    rules = [json.loads(line) for line in RULES_FILE.read_text(encoding="utf-8").splitlines()]
    for rule in rules:
        change(rule)
    return "".join(json.dumps(rule) + "\n" for rule in rules).encode()


def drop_ecs(rule: dict[str, Any]) -> None:
    for entry in rule["required_fields"]:
        entry.pop("ecs")


class TestRulesImport:
    def test_shipped_rules_import_into_8_12(self) -> None:
        """Every rule imported, with its ecs flags, into the version that refused them without."""
        with kibana_contract_server(KibanaContract(version="8.12.2")) as (url, contract):
            answer = import_rules(url, RULES_FILE.read_bytes())
        assert answer["success"] is True
        assert answer["success_count"] == answer["rules_count"] == 6
        assert len(contract.rules["default"]) == 6

    def test_without_ecs_8_12_refuses_every_rule(self) -> None:
        with kibana_contract_server(KibanaContract(version="8.12.2")) as (url, contract):
            answer = import_rules(url, rules_edited(drop_ecs))
        assert answer["success_count"] == 0
        messages = {error["error"]["message"] for error in answer["errors"]}
        assert messages == {"required_fields.0.ecs: Required"}
        assert contract.rules["default"] == {}

    def test_without_ecs_8_15_computes_it(self) -> None:
        with kibana_contract_server(KibanaContract(version="8.15.0")) as (url, _contract):
            assert import_rules(url, rules_edited(drop_ecs))["success_count"] == 6

    def test_without_timestamp_override_the_rules_are_refused(self) -> None:
        """The project's rule: a rule on @timestamp never sees a late event."""
        with kibana_contract_server(KibanaContract(version="9.1.0")) as (url, _contract):
            answer = import_rules(url, rules_edited(lambda rule: rule.pop("timestamp_override")))
        assert answer["success_count"] == 0
        assert all("timestamp_override" in e["error"]["message"] for e in answer["errors"])
