"""The mapping JSON, the fields module derived from it, and setup's rendering per capability."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest

import mappings
from indexer.capabilities import Capabilities
from indexer.fields import (
    INDEX_TEMPLATES,
    KEYWORD_TYPES,
    TARGETS,
    TEXT_TYPES,
    Target,
    composed_mappings,
    document_paths,
    field,
    mapped_fields,
)
from indexer.setup import (
    LIFECYCLE_POLICY,
    SETTINGS_COMPONENT,
    render,
    skipped,
    substitute_types,
    validate_retention,
    winning_template,
)

BARE = Capabilities(
    version="9.5.4",
    distribution="zip",
    data_streams=True,
    data_stream_api=False,
    lifecycle=False,
    security=False,
    field_types=(),
)
FULL = replace(
    BARE,
    distribution="tar",
    data_stream_api=True,
    lifecycle=True,
    security=True,
    field_types=("match_only_text", "wildcard", "constant_keyword"),
)


def specs(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field spec, including objects and multi-fields, by dotted name."""
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        yield path, spec
        yield from specs(spec.get("properties", {}), f"{path}.")
        yield from specs(spec.get("fields", {}), f"{path}.")


def all_types(resources_list: list[Any]) -> set[str]:
    found: set[str] = set()
    for resource in resources_list:
        props = resource.body.get("template", {}).get("mappings", {}).get("properties", {})
        found |= {spec.get("type", "object") for _name, spec in specs(props)}
    return found


class TestJsonFiles:
    def test_every_file_is_a_json_object(self) -> None:
        """Each file under mappings/ parses as a JSON object and is named by its file."""
        for kind in mappings.KINDS:
            folder = resources.files("mappings") / kind
            files = [e for e in folder.iterdir() if e.name.endswith(".json")]
            assert files, kind
            for entry in files:
                assert isinstance(json.loads(entry.read_text(encoding="utf-8")), dict), entry

    def test_index_templates_compose_existing_components(self) -> None:
        """Every component an index template names exists, except the optional @custom."""
        components = set(mappings.names("component"))
        for name in mappings.names("index"):
            body = mappings.load("index", name)
            missing = set(body["composed_of"]) - components
            assert (
                missing
                == set(body.get("ignore_missing_component_templates", []))
                == {"appmixer-audit@custom"}
            )

    def test_priority_beats_the_builtin_logs_template(self) -> None:
        """Both index templates outrank Elastic's logs template (priority 100)."""
        for name in mappings.names("index"):
            assert mappings.load("index", name)["priority"] > 100

    def test_patterns_are_the_targets_and_do_not_overlap(self) -> None:
        """Each target has its own pattern; the events one does not catch the changes target."""
        patterns = {
            name: mappings.load("index", name)["index_patterns"]
            for name in INDEX_TEMPLATES.values()
        }
        assert patterns == {
            "logs-appmixer.audit": ["logs-appmixer.audit-*"],
            "logs-appmixer.audit_changes": ["logs-appmixer.audit_changes-*"],
        }
        assert not "logs-appmixer.audit_changes-default".startswith("logs-appmixer.audit-")

    def test_roles_grant_only_what_each_needs(self) -> None:
        """The writer creates, reads and refreshes (replay-window lookups), never alters, and
        may read the node's version (``monitor``, nothing that manages); the reader reads."""
        writer = mappings.load("roles", "appmixer_audit_writer")
        reader = mappings.load("roles", "appmixer_audit_reader")
        assert writer["cluster"] == ["monitor"]
        assert reader["cluster"] == []
        for role in (writer, reader):
            assert len(role["indices"]) == 2
            assert sorted(role["indices"][0]["names"]) == [
                "logs-appmixer.audit-*",
                "logs-appmixer.audit_changes-*",
            ]
            assert role["indices"][1]["names"] == ["appmixer-audit.checkpoints-*"]
        assert sorted(writer["indices"][0]["privileges"]) == [
            "auto_configure",
            "create_doc",
            "maintenance",
            "read",
        ]
        assert sorted(writer["indices"][1]["privileges"]) == ["auto_configure", "create_doc"]
        assert sorted(reader["indices"][0]["privileges"]) == ["read", "view_index_metadata"]
        assert sorted(reader["indices"][1]["privileges"]) == ["read", "view_index_metadata"]

    def test_lifecycle_rolls_over_hot_then_deletes(self) -> None:
        """The policy rolls over in hot and deletes after a year by default."""
        phases = mappings.load("lifecycle", LIFECYCLE_POLICY)["policy"]["phases"]
        assert set(phases) == {"hot", "delete"}
        assert "rollover" in phases["hot"]["actions"]
        assert phases["delete"]["min_age"] == "365d"
        assert phases["delete"]["actions"] == {"delete": {}}


class TestMappingRules:
    @pytest.mark.parametrize("target", TARGETS)
    def test_root_is_not_dynamic(self, target: Target) -> None:
        """Unknown fields are stored but never mapped, so input cannot explode the mapping."""
        assert composed_mappings(target)["dynamic"] is False

    @pytest.mark.parametrize("target", TARGETS)
    def test_field_rules(self, target: Target) -> None:
        """Keywords cap at 1024; dates (but @timestamp) and ips ignore malformed values."""
        props = composed_mappings(target)["properties"]
        for name, spec in specs(props):
            kind = spec.get("type")
            if kind == "keyword":
                assert spec.get("ignore_above") == 1024, name
            if kind == "ip" or (kind == "date" and name != "@timestamp"):
                assert spec.get("ignore_malformed") is True, name
        # A data stream refuses ignore_malformed on its timestamp; a bad time is rejected
        # by the normalizer before it gets here.
        assert "ignore_malformed" not in props["@timestamp"]

    def test_event_field_types(self) -> None:
        """The fields with a special role have the types that serve it."""
        assert field("events", "message").type in TEXT_TYPES
        assert field("events", "message").subfield(KEYWORD_TYPES) == "message.keyword"
        assert field("events", "appmixer.audit.changes").type == "flattened"
        for name in ("before", "after", "data"):
            stored = field("events", f"appmixer.audit.{name}")
            assert (stored.type, stored.indexed) == ("object", False)
        for name in ("type", "dataset", "namespace"):
            assert field("events", f"data_stream.{name}").type == "constant_keyword"
        assert field("events", "event.ingested").type == "date"
        assert field("events", "source.ip").type == "ip"
        assert field("changes", "appmixer.change.index").type == "integer"

    def test_shared_fields_have_one_type(self) -> None:
        """A name mapped in both targets has the same type in both (one data view over both)."""
        events, changes = mapped_fields("events"), mapped_fields("changes")
        for name in set(events) & set(changes):
            assert events[name] == changes[name], name


class TestDocumentPaths:
    def test_paths_stop_at_mapped_leaves(self) -> None:
        """Inside a flattened or stored-only field counts as that one field; lists are entered."""
        document = {
            "@timestamp": "2026-11-25T09:00:00Z",
            "event": {"id": "e", "category": ["iam", "configuration"]},
            "appmixer": {
                "audit": {"changes": [{"path": "/a", "op": "add"}], "before": {"x": {"y": 1}}}
            },
            "related": {"user": []},
            "user": {"name": None},
            "unmapped": {"deep": 1},
        }
        assert document_paths(document, "events") == {
            "@timestamp",
            "event.id",
            "event.category",
            "appmixer.audit.changes",
            "appmixer.audit.before",
            "unmapped.deep",
        }


class TestRender:
    def test_bare_cluster_gets_core_types_only(self) -> None:
        """Without the optional types, text and keyword stand in, keywords capped at 1024."""
        rendered = render(BARE)
        assert all_types(rendered) & {"match_only_text", "constant_keyword", "wildcard"} == set()
        base = next(r for r in rendered if r.name == "appmixer-audit@base")
        namespace = base.body["template"]["mappings"]["properties"]["data_stream"]
        assert namespace["properties"]["namespace"] == {"type": "keyword", "ignore_above": 1024}

    def test_full_cluster_keeps_preferred_types(self) -> None:
        """Where the cluster has them, match_only_text and constant_keyword are used."""
        assert {"match_only_text", "constant_keyword"} <= all_types(render(FULL))

    def test_substitution_leaves_the_source_alone(self) -> None:
        """Substituting returns a copy; the loaded JSON is not changed."""
        props = {"m": {"type": "match_only_text", "fields": {"k": {"type": "wildcard"}}}}
        assert substitute_types(props, set()) == {
            "m": {"type": "text", "fields": {"k": {"type": "keyword", "ignore_above": 1024}}}
        }
        assert props["m"]["type"] == "match_only_text"

    def test_data_stream_only_where_supported(self) -> None:
        """Index templates carry data_stream: {} exactly when the cluster has data streams."""
        for caps, expected in ((BARE, True), (replace(BARE, data_streams=False), False)):
            for resource in render(caps):
                if resource.kind == "index":
                    assert ("data_stream" in resource.body) is expected

    def test_lifecycle_where_ilm_and_data_streams_exist(self) -> None:
        """The policy (with the retention) and its setting appear only with ILM and data streams."""
        for caps in (BARE, replace(FULL, data_streams=False)):
            rendered = render(caps)
            assert not [r for r in rendered if r.kind == "lifecycle"]
            component = next(r for r in rendered if r.name == SETTINGS_COMPONENT)
            assert "lifecycle" not in component.body["template"]["settings"]["index"]
        rendered = render(FULL, retention="90d")
        policy = next(r for r in rendered if r.kind == "lifecycle")
        assert policy.body["policy"]["phases"]["delete"]["min_age"] == "90d"
        component = next(r for r in rendered if r.name == SETTINGS_COMPONENT)
        settings = component.body["template"]["settings"]["index"]
        assert settings["lifecycle"] == {"name": LIFECYCLE_POLICY}

    def test_roles_only_with_security(self) -> None:
        """Roles are rendered when security is on, and skipped with a reason otherwise."""
        assert [r.name for r in render(FULL) if r.kind == "roles"] == mappings.names("roles")
        assert not [r for r in render(BARE) if r.kind == "roles"]
        reasons = {s.name: s.detail for s in skipped(BARE, None) if s.kind == "role"}
        assert reasons == dict.fromkeys(
            mappings.names("roles"), "security is not enabled on this cluster"
        )

    def test_install_order_puts_components_first(self) -> None:
        """Components and the policy come before the index templates that use them."""
        kinds = [r.kind for r in render(FULL)]
        assert kinds.index("index") > max(i for i, k in enumerate(kinds) if k == "component")
        assert kinds.index("index") > kinds.index("lifecycle")

    def test_digest_is_stable_and_follows_content(self) -> None:
        """The same capabilities give the same digests; another retention changes the policy's."""
        first = {r.name: r.digest for r in render(FULL)}
        assert first == {r.name: r.digest for r in render(FULL)}
        other = {r.name: r.digest for r in render(FULL, retention="30d")}
        assert other[LIFECYCLE_POLICY] != first[LIFECYCLE_POLICY]
        assert {k: v for k, v in other.items() if k != LIFECYCLE_POLICY} == {
            k: v for k, v in first.items() if k != LIFECYCLE_POLICY
        }
        for resource in render(FULL):
            meta = (
                resource.body["policy"]["_meta"]
                if resource.kind == "lifecycle"
                else resource.body.get("metadata") or resource.body["_meta"]
            )
            assert meta["digest"] == resource.digest

    @pytest.mark.parametrize("value", ["365d", "12h", "90m", "3600s"])
    def test_retention_accepted(self, value: str) -> None:
        """Whole numbers of days, hours, minutes or seconds are valid retentions."""
        assert validate_retention(value) == value

    @pytest.mark.parametrize("value", ["1y", "0d", "d", "-5d", "1.5d", ""])
    def test_retention_refused(self, value: str) -> None:
        """Anything else is refused with a message naming the value."""
        with pytest.raises(ValueError, match="retention"):
            validate_retention(value)

    def test_dashboards_step(self) -> None:
        """Kibana is skipped without a URL; with one, the import reports for itself."""
        assert skipped(BARE, None)[-1].detail == "no Kibana URL given"
        assert all(step.kind != "dashboards" for step in skipped(BARE, "http://kibana:5601"))

    def test_winning_template_is_the_highest_matching_priority(self) -> None:
        """The template applied to a name is the matching one with the highest priority."""
        templates = [
            {"name": "logs", "index_template": {"index_patterns": ["logs-*-*"], "priority": 100}},
            {"name": "ours", "index_template": {"index_patterns": ["logs-a-*"], "priority": 200}},
            {"name": "other", "index_template": {"index_patterns": ["metrics-*"], "priority": 900}},
        ]
        assert winning_template(templates, "logs-a-default") == ("ours", 200)
        assert winning_template(templates, "logs-b-default") == ("logs", 100)
        assert winning_template(templates, "traces-x") is None
