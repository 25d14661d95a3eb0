"""``appmixer-audit setup`` against a real node: idempotent, concurrent-safe, capability-aware."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

import mappings
from indexer.capabilities import Capabilities, detect
from indexer.setup import Resource, SetupReport, apply_resource, install, make_resource, render
from tests.esnode import remove_targets
from tests.integration.conftest import make_settings, targets

pytestmark = [pytest.mark.integration, pytest.mark.compat]


def resolve(es: Elasticsearch, name: str) -> Any:
    """``GET _resolve/index``: the 9.x client's ``resolve_index`` POSTs, which 8.x refuses."""
    return es.perform_request("GET", f"/_resolve/index/{name}").body


TEMPLATE_KINDS = {"component template", "index template"}


def snapshot(es: Elasticsearch) -> dict[str, Any]:
    """The product's index and component templates exactly as the node returns them."""
    index = es.indices.get_index_template(name="logs-appmixer.audit*").body
    component = es.cluster.get_component_template(name="appmixer-audit@*").body
    return {
        "index": sorted(index["index_templates"], key=lambda t: t["name"]),
        "component": sorted(component["component_templates"], key=lambda t: t["name"]),
    }


def without_dates(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_dates(v) for k, v in value.items() if not k.endswith("_date_millis")}
    if isinstance(value, list):
        return [without_dates(item) for item in value]
    return value


def make_stale(es: Elasticsearch) -> None:
    """Give every installed template an outdated digest, as an older release would leave it."""
    for item in snapshot(es)["component"]:
        body = without_dates(item["component_template"])
        body["_meta"]["digest"] = "stale"
        es.perform_request(
            "PUT",
            f"/_component_template/{item['name']}",
            body=body,
            headers={"accept": "application/json", "content-type": "application/json"},
        )
    for item in snapshot(es)["index"]:
        body = without_dates(item["index_template"])
        body["_meta"]["digest"] = "stale"
        es.indices.put_index_template(name=item["name"], body=body)


def setup_command() -> list[str]:
    script = Path(sys.executable).parent / "appmixer-audit"
    if script.exists():
        return [str(script), "setup"]
    found = shutil.which("appmixer-audit")
    return [found, "setup"] if found else [sys.executable, "-m", "agent", "setup"]


def run_setup(es_url: str, namespace: str) -> subprocess.Popen[str]:
    args = [*setup_command(), "--es-url", es_url, "--namespace", namespace, "--format", "json"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["ok"] is True
    return report


def template_statuses(report: dict[str, Any]) -> set[str]:
    return {step["status"] for step in report["steps"] if step["kind"] in TEMPLATE_KINDS}


def step(report: SetupReport, kind: str, name: str) -> tuple[str, str]:
    found = [s for s in report.steps if s.kind == kind and s.name == name]
    assert len(found) == 1, report.lines()
    return found[0].status, found[0].detail


@pytest.fixture
def caps(es: Elasticsearch) -> Capabilities:
    return detect(es)


class TestIdempotence:
    def test_second_run_changes_nothing(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport
    ) -> None:
        """A second run reports every template unchanged and leaves them byte-identical."""
        before = snapshot(es)
        report = install(es, *targets(namespace))
        assert report.ok
        statuses = {s.status for s in report.steps if s.kind in TEMPLATE_KINDS}
        assert statuses == {"unchanged"}
        assert snapshot(es) == before

    def test_cli_twice_then_concurrently(self, es: Elasticsearch, es_url: str) -> None:
        """Two runs in a row, then two processes at once over outdated templates: no error,
        and the node ends in exactly the state a single run leaves."""
        namespace = "tsetupcli"
        try:
            finished(run_setup(es_url, namespace))
            reference = snapshot(es)
            assert template_statuses(finished(run_setup(es_url, namespace))) == {"unchanged"}
            assert snapshot(es) == reference

            make_stale(es)
            racing = [run_setup(es_url, namespace), run_setup(es_url, namespace)]
            reports = [finished(process) for process in racing]
            for report in reports:
                assert template_statuses(report) <= {"updated", "unchanged"}
            assert "updated" in template_statuses(reports[0]) | template_statuses(reports[1])
            assert without_dates(snapshot(es)) == without_dates(reference)
            assert template_statuses(finished(run_setup(es_url, namespace))) == {"unchanged"}
        finally:
            remove_targets(es, namespace)

    def test_new_resource_is_installed_then_left_alone(
        self, es: Elasticsearch, namespace: str, caps: Capabilities
    ) -> None:
        """A resource the node lacks is installed; the same again is unchanged; a change updates."""
        name = f"appmixer-audit-test-{namespace}"
        base = next(r for r in render(caps) if r.name == "appmixer-audit@base")
        body = {"template": base.body["template"], "_meta": {"managed_by": "test"}}
        try:
            first = render_one(name, body)
            assert apply_resource(es, first).status == "installed"
            assert apply_resource(es, render_one(name, body)).status == "unchanged"
            body["_meta"]["note"] = "changed"
            assert apply_resource(es, render_one(name, body)).status == "updated"
            stored = es.cluster.get_component_template(name=name).body
            meta = stored["component_templates"][0]["component_template"]["_meta"]
            assert meta["note"] == "changed"
        finally:
            es.options(ignore_status=404).cluster.delete_component_template(name=name)


def render_one(name: str, body: dict[str, Any]) -> Resource:
    return make_resource("component", name, json.loads(json.dumps(body)))


class TestWhatIsInstalled:
    def test_templates_on_the_node_are_the_rendered_files(
        self, es: Elasticsearch, caps: Capabilities, installed: SetupReport
    ) -> None:
        """Each index and component template holds the mappings/ JSON as rendered for it."""
        for resource in render(caps):
            if resource.kind == "component":
                got = es.cluster.get_component_template(name=resource.name).body
                stored = got["component_templates"][0]["component_template"]
                assert stored["_meta"]["digest"] == resource.digest
                want_mappings = resource.body["template"].get("mappings")
                assert stored["template"].get("mappings") == want_mappings
            elif resource.kind == "index":
                got = es.indices.get_index_template(name=resource.name).body
                stored = got["index_templates"][0]["index_template"]
                assert stored["_meta"]["digest"] == resource.digest
                assert stored["index_patterns"] == resource.body["index_patterns"]
                assert stored["priority"] == 200
                assert stored["composed_of"] == resource.body["composed_of"]
                assert ("data_stream" in stored) == caps.data_streams

    def test_skipped_items_say_why(
        self, es: Elasticsearch, es_url: str, namespace: str, caps: Capabilities
    ) -> None:
        """What the cluster lacks is skipped with the reason; Kibana only with a URL."""
        report = install(es, *targets(namespace), kibana_url="http://kibana:5601")
        status, detail = step(report, "lifecycle policy", "appmixer-audit")
        if caps.lifecycle and caps.data_streams:
            assert status in {"installed", "updated", "unchanged"}
        elif not caps.lifecycle:
            assert (status, detail) == ("skipped", "this cluster has no index lifecycle management")
        for role in mappings.names("roles"):
            status, detail = step(report, "role", role)
            if not caps.security:
                assert (status, detail) == ("skipped", "security is not enabled on this cluster")
        assert all(item.kind != "dashboards" for item in report.steps)
        assert step(install(es, *targets(namespace)), "dashboards", "kibana") == (
            "skipped",
            "no Kibana URL given",
        )


class TestTargets:
    def test_first_write_makes_the_target_with_the_mapping(
        self, es: Elasticsearch, es_url: str, namespace: str, caps: Capabilities
    ) -> None:
        """After setup, the first write creates a data stream (or setup made the index) with
        the managed mapping; setup then reports the target as existing."""
        settings = make_settings(es_url, namespace)
        kind = "data stream" if caps.data_streams else "index"
        status, _detail = step(
            install(es, settings.events_target, settings.changes_target),
            kind,
            settings.events_target,
        )
        assert status in {"skipped", "installed"}
        es.index(
            index=settings.events_target,
            id="e1",
            op_type="create",
            document={"@timestamp": "2026-11-25T09:00:00Z", "message": "Flow Updated"},
            refresh="wait_for",
        )
        resolved = resolve(es, settings.events_target)
        if caps.data_streams:
            assert [d["name"] for d in resolved["data_streams"]] == [settings.events_target]
        mapping = next(iter(es.indices.get_mapping(index=settings.events_target).values()))
        assert mapping["mappings"]["dynamic"] in {False, "false"}
        want = "match_only_text" if "match_only_text" in caps.field_types else "text"
        assert mapping["mappings"]["properties"]["message"]["type"] == want
        again = install(es, settings.events_target, settings.changes_target)
        assert step(again, kind, settings.events_target) == ("unchanged", "exists")

    def test_changed_templates_roll_an_existing_data_stream(
        self, es: Elasticsearch, es_url: str, namespace: str, caps: Capabilities
    ) -> None:
        """When setup changes the templates, an existing data stream rolls over at its next
        write, so new fields are mapped from then on."""
        if not caps.data_streams:
            pytest.skip("this cluster has no data streams")
        settings = make_settings(es_url, namespace)
        install(es, settings.events_target, settings.changes_target)
        document = {"@timestamp": "2026-11-25T09:00:00Z", "message": "Flow Updated"}
        target = settings.events_target
        es.index(index=target, id="a", op_type="create", document=document)
        make_stale(es)
        report = install(es, settings.events_target, settings.changes_target)
        status, detail = step(report, "data stream", target)
        assert status == "updated"
        assert "rolled over: the new mapping applies" in detail
        es.index(index=target, id="b", op_type="create", document=document)
        backing = resolve(es, target)["data_streams"][0]
        assert len(backing["backing_indices"]) == 2

    def test_a_template_outranking_ours_is_reported(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport
    ) -> None:
        """A foreign template that would win for a target makes setup fail for that target,
        naming it, instead of letting another mapping apply unnoticed."""
        settings = make_settings(es_url, namespace)
        name = f"shadow-{namespace}"
        es.indices.put_index_template(
            name=name, index_patterns=[settings.events_target], priority=900, data_stream={}
        )
        try:
            report = install(es, settings.events_target, settings.changes_target)
        finally:
            es.indices.delete_index_template(name=name)
        assert not report.ok
        kind = "data stream" if detect(es).data_streams else "index"
        status, detail = step(report, kind, settings.events_target)
        assert status == "failed"
        assert detail.startswith(f"index template {name} (priority 900) outranks")
        assert step(report, kind, settings.changes_target)[0] != "failed"
