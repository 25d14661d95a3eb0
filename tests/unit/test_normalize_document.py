"""The event document and its change documents: shape, contract fields, ids and hash."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent import __version__
from agent.config import load_settings
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Rejected, Skipped, Source
from agent.normalize.document import ECS_VERSION
from common.stage import Stage
from devtools.simulate import iter_events
from tests.unit.document_models import ChangeDocument, EventDocument, field_names

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson"
SOURCE = Source(path="/var/log/appmixer/audit.log", file_id="2049:131:abcd", offset=0, host="pod-a")


def run(record: Any, source: Source | None = SOURCE, **options: Any) -> Normalized:
    normalizer = Normalizer(NormalizeOptions(host_name="pod-a", **options))
    outcome = normalizer(orjson.dumps(record), source)
    assert isinstance(outcome, Normalized), outcome
    return outcome


def sample_outcomes() -> list[Any]:
    normalizer = Normalizer(NormalizeOptions(host_name="pod-a"))
    outcomes, offset = [], 0
    for raw in SAMPLE.read_bytes().splitlines(keepends=True):
        outcomes.append(normalizer(raw.rstrip(b"\n"), Source(str(SAMPLE), "f", offset, "pod-a")))
        offset += len(raw)
    return outcomes


def leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and prefix not in OPAQUE:
        return [item for key, inner in value.items() for item in leaves(inner, prefix + key + ".")]
    return [(prefix.rstrip("."), value)]


OPAQUE = {f"appmixer.audit.{name}." for name in ("before", "after", "data", "changes")}
UPDATE = {
    "id": "evt-1",
    "created": "2026-11-25T09:20:41.007Z",
    "action": "Flow Updated",
    "userId": "u1",
    "email": "maria@acme.example",
    "flowId": "f1",
    "tenantId": "acme",
    "entity": {"type": "flow", "id": "f1", "name": "Sync leads"},
    "before": {"name": "Sync leads", "n": 1, "tags": ["a"]},
    "after": {"name": "Sync leads to CRM", "n": 2, "tags": ["a", "b"], "cfg": {"x": None}},
}


class TestSample:
    def test_outcomes(self) -> None:
        """The sample gives 12 documents, 1 skipped service line and 2 rejections with reasons."""
        outcomes = sample_outcomes()
        kinds = [type(outcome).__name__ for outcome in outcomes]
        assert kinds.count("Normalized") == 12
        assert kinds.count("Skipped") == 1
        rejected = [outcome for outcome in outcomes if isinstance(outcome, Rejected)]
        assert [outcome.field for outcome in rejected] == [None, "created"]
        assert rejected[0].reason.startswith("not valid JSON")
        assert rejected[1].reason == (
            "field 'created': 'not a date' is not an ISO 8601 time or epoch milliseconds"
        )

    def test_documents_match_the_models(self) -> None:
        """Every event and change document validates against the strict output models."""
        for outcome in sample_outcomes() + [run(record) for record in iter_events(300, seed=3)]:
            if isinstance(outcome, Normalized):
                EventDocument.model_validate(outcome.event)
                for _id, doc in outcome.changes:
                    ChangeDocument.model_validate(doc)

    def test_no_empty_values(self) -> None:
        """No field is null, an empty string or an empty list or object."""
        for outcome in sample_outcomes():
            if isinstance(outcome, Normalized):
                docs = [outcome.event, *(doc for _id, doc in outcome.changes)]
                for doc in docs:
                    for name, value in leaves(doc):
                        assert value not in (None, "", [], {}), name

    def test_only_contract_fields(self) -> None:
        """Documents carry only the fields the models (and so the mappings) name."""
        events, changes = set(field_names(EventDocument)), set(field_names(ChangeDocument))
        for outcome in sample_outcomes():
            if isinstance(outcome, Normalized):
                assert {name for name, _ in leaves(outcome.event)} <= events
                for _id, doc in outcome.changes:
                    assert {name for name, _ in leaves(doc)} <= changes

    def test_login_failed(self) -> None:
        """Login Failed is an authentication failure with its reason and client address."""
        doc = sample_outcomes()[4].event
        assert doc["event"]["outcome"] == "failure"
        assert doc["event"]["reason"] == "invalid password"
        assert doc["event"]["category"] == ["authentication"]
        assert doc["source"] == {"ip": "203.0.113.7"}
        assert doc["@timestamp"] == "2026-11-25T09:02:09.000Z"

    def test_password_change_is_visible_but_hidden(self) -> None:
        """The password change stays in the diff as a replace with both values redacted."""
        outcome = sample_outcomes()[5]
        audit = outcome.event["appmixer"]["audit"]
        assert audit["changes"] == [
            {"path": "/password", "op": "replace", "old": "[REDACTED]", "new": "[REDACTED]"}
        ]
        assert audit["before"] == {"password": "[REDACTED]"}
        assert outcome.event["user"]["target"] == {"id": "60aa00bb11cc22dd33ee44ff"}
        assert b"$2b$" not in orjson.dumps([outcome.event, outcome.changes])

    def test_precomputed_diff(self) -> None:
        """The ACL rule update's own diff becomes the document's changes."""
        audit = sample_outcomes()[7].event["appmixer"]["audit"]
        assert audit["changes"][0] == {
            "path": "/rules/3/role",
            "op": "replace",
            "old": "user",
            "new": "admin",
        }
        assert audit["changes_count"] == 2

    def test_envelope_line(self) -> None:
        """The pino envelope line is an event dated by the envelope's epoch milliseconds."""
        doc = sample_outcomes()[9].event
        assert doc["event"]["action"] == "template.published"
        assert doc["@timestamp"] == "2025-11-25T10:00:00.000Z"


class TestEventDocument:
    def test_full_shape(self) -> None:
        """A flow update fills every contract field it has a value for."""
        doc = run(UPDATE).event
        assert doc["event"] | {"hash": "-"} == {
            "id": "evt-1", "kind": "event", "category": ["configuration"], "type": ["change"],
            "outcome": "success", "action": "flow.updated", "dataset": "appmixer.audit",
            "module": "appmixer", "hash": "-",
        }  # fmt: skip
        assert doc["message"] == "Flow Updated"
        assert doc["user"] == {"id": "u1", "email": "maria@acme.example"}
        assert doc["related"] == {"user": ["u1", "maria@acme.example"]}
        appmixer = doc["appmixer"]
        assert appmixer["flow"] == {"id": "f1"}
        assert appmixer["entity"] == {"type": "flow", "id": "f1", "name": "Sync leads"}
        assert appmixer["tenant"] == {"id": "acme"}
        assert doc["organization"] == {"id": "acme"}  # the tenant, where ECS readers look
        assert appmixer["audit"]["group"] == "Flow Management"
        assert appmixer["audit"]["catalog"] is True
        assert appmixer["audit"]["type"] == "update"
        assert doc["log"] == {"file": {"path": SOURCE.path}, "offset": 0}
        assert doc["host"] == {"name": "pod-a"}
        assert doc["agent"] == {"type": "appmixer-audit", "version": __version__}
        assert doc["ecs"] == {"version": ECS_VERSION}
        assert doc["data_stream"] == {
            "type": "logs",
            "dataset": "appmixer.audit",
            "namespace": "default",
        }
        assert "ingested" not in doc["event"]

    def test_rendered_changes(self) -> None:
        """Old and new are text: strings as they are, anything else compact JSON."""
        audit = run(UPDATE).event["appmixer"]["audit"]
        assert audit["changes"] == [
            {"path": "/name", "op": "replace", "old": "Sync leads", "new": "Sync leads to CRM"},
            {"path": "/n", "op": "replace", "old": "1", "new": "2"},
            {"path": "/tags/1", "op": "add", "new": "b"},
            {"path": "/cfg", "op": "add", "new": '{"x":null}'},
        ]
        assert (audit["changes_count"], audit["changes_truncated"]) == (4, False)

    def test_long_values_are_cut_and_marked(self) -> None:
        """A value longer than the cap is cut with a marker and the diff says so."""
        record = {**UPDATE, "before": {"a": "x"}, "after": {"a": "y" * 100}}
        audit = run(record, diff_max_value_chars=16).event["appmixer"]["audit"]
        assert audit["changes"][0]["new"] == "y" * 16 + "…[truncated 84 chars]"
        assert audit["after"] == {"a": "y" * 16 + "…[truncated 84 chars]"}

    def test_change_cap_is_marked(self) -> None:
        """Capped diffs keep the full count and say they were truncated."""
        record = {**UPDATE, "before": {}, "after": {str(i): i for i in range(20)}}
        outcome = run(record, diff_max_changes=5)
        audit = outcome.event["appmixer"]["audit"]
        assert (len(audit["changes"]), audit["changes_count"], audit["changes_truncated"]) == (
            5,
            20,
            True,
        )
        assert len(outcome.changes) == 5

    def test_no_states_no_changes(self) -> None:
        """An event without states or diff has a zero count and no changes field."""
        audit = run({"action": "User Logged In", "created": 0}).event["appmixer"]["audit"]
        assert audit == {
            "type": "access",
            "group": "Users",
            "catalog": True,
            "changes_count": 0,
            "changes_truncated": False,
        }

    def test_unknown_action(self) -> None:
        """An uncatalogued action is indexed with catalog false, no group and its own name."""
        doc = run({"action": "Webhook Secret Rotated", "created": 0, "type": "update"}).event
        assert doc["message"] == "Webhook Secret Rotated"
        assert doc["event"]["action"] == "webhook_secret_rotated"
        assert doc["appmixer"]["audit"]["catalog"] is False
        assert "group" not in doc["appmixer"]["audit"]
        assert doc["event"]["category"] == ["configuration"]

    def test_input_type_and_outcome(self) -> None:
        """A stated type and outcome are used; Login Failed is a failure whatever it says."""
        doc = run({"action": "Widget Created", "created": 0, "type": "delete"}).event
        assert doc["appmixer"]["audit"]["type"] == "delete"
        assert doc["event"]["type"] == ["deletion"]
        failed = run({"action": "Login Failed", "created": 0, "outcome": "success"}).event
        assert failed["event"]["outcome"] == "failure"
        assert run({**UPDATE, "status": "error"}).event["event"]["outcome"] == "failure"

    def test_namespace(self) -> None:
        """The namespace goes into data_stream.namespace of both kinds of document."""
        outcome = run(UPDATE, namespace="prod")
        assert outcome.event["data_stream"]["namespace"] == "prod"
        assert all(doc["data_stream"]["namespace"] == "prod" for _id, doc in outcome.changes)


class TestHash:
    def test_hash_is_reproducible(self) -> None:
        """event.hash is SHA-256 of the sorted compact document without hash, ingested and the
        file path (a rename changes where a line is read, not what it says)."""
        doc = run(UPDATE).event
        stored = {**doc, "event": {**doc["event"], "ingested": "2026-11-25T10:00:00.000Z"}}
        check = {**stored, "event": dict(stored["event"]), "log": dict(stored["log"])}
        claimed = check["event"].pop("hash")
        check["event"].pop("ingested")
        assert check["log"].pop("file") == {"path": "/var/log/appmixer/audit.log"}
        digest = hashlib.sha256(orjson.dumps(check, option=orjson.OPT_SORT_KEYS)).hexdigest()
        assert digest == claimed

    def test_hash_changes_with_content(self) -> None:
        """A different value gives a different hash."""
        assert (
            run(UPDATE).event["event"]["hash"]
            != run({**UPDATE, "userId": "u2"}).event["event"]["hash"]
        )


class TestIds:
    def test_input_id_is_the_document_id(self) -> None:
        """The input's id is the event id, whatever the file or host."""
        other = Source("other.log", "9:9:ff", 99, "pod-b")
        assert run(UPDATE).event_id == run(UPDATE, source=other).event_id == "evt-1"

    def test_derived_ids_are_stable(self) -> None:
        """Without an input id, the same host, file, offset and line give the same id."""
        record = {key: value for key, value in UPDATE.items() if key != "id"}
        first, second = run(record), run(record)
        assert first.event_id == second.event_id
        assert first.event_id.startswith("auto-")
        assert len(first.event_id) == len("auto-") + 32

    @pytest.mark.parametrize(
        "source",
        [
            Source(SOURCE.path, "2049:132:abcd", SOURCE.offset, SOURCE.host),
            Source(SOURCE.path, SOURCE.file_id, 1, SOURCE.host),
        ],
    )
    def test_derived_ids_differ_by_origin(self, source: Source) -> None:
        """Another file content or offset gives another id."""
        record = {key: value for key, value in UPDATE.items() if key != "id"}
        assert run(record).event_id != run(record, source=source).event_id

    def test_derived_ids_agree_across_hosts(self) -> None:
        """One shared file read by two pods: the same ids, so it is stored once."""
        record = {key: value for key, value in UPDATE.items() if key != "id"}
        other = Source(SOURCE.path, SOURCE.file_id, SOURCE.offset, "pod-b")
        assert run(record).event_id == run(record, source=other).event_id

    def test_stdin_source(self) -> None:
        """Without a source, the line is attributed to stdin."""
        doc = run(UPDATE, source=None).event
        assert doc["log"] == {"file": {"path": "-"}, "offset": 0}
        assert doc["host"] == {"name": "pod-a"}

    def test_very_long_ids_are_hashed(self) -> None:
        """An input id too long for Elasticsearch becomes a recognisable hash."""
        outcome = run({**UPDATE, "id": "x" * 5000})
        assert outcome.event_id.startswith("idh-")
        assert len(outcome.event_id.encode()) <= 512
        assert all(len(change_id.encode()) <= 512 for change_id, _ in outcome.changes)

    def test_change_ids(self) -> None:
        """Change documents are ``<event id>:<index>``, in diff order."""
        outcome = run(UPDATE)
        assert [change_id for change_id, _ in outcome.changes] == [f"evt-1:{i}" for i in range(4)]
        assert [doc["appmixer"]["change"]["index"] for _, doc in outcome.changes] == [0, 1, 2, 3]


class TestChangeDocuments:
    def test_shape(self) -> None:
        """Each change document carries its event's keys and one row of the diff."""
        _id, doc = run(UPDATE).changes[0]
        assert doc == {
            "@timestamp": "2026-11-25T09:20:41.007Z",
            "event": {"id": "evt-1", "kind": "enrichment", "action": "flow.updated",
                      "dataset": "appmixer.audit_changes"},
            "message": "Flow Updated",
            "user": {"id": "u1", "email": "maria@acme.example"},
            "appmixer": {"audit": {"type": "update"}, "flow": {"id": "f1"},
                         "entity": {"type": "flow", "id": "f1"},
                         "change": {"index": 0, "path": "/name", "op": "replace",
                                    "old": "Sync leads", "new": "Sync leads to CRM"}},
            "data_stream": {"type": "logs", "dataset": "appmixer.audit_changes",
                            "namespace": "default"},
        }  # fmt: skip

    def test_documents_are_independent(self) -> None:
        """Stamping one change document (as a sink does) leaves the others untouched."""
        outcome = run(UPDATE)
        outcome.changes[0][1]["event"]["ingested"] = "now"
        assert "ingested" not in outcome.changes[1][1]["event"]
        assert "ingested" not in outcome.event["event"]


class TestOptions:
    def test_from_settings(self) -> None:
        """Options come from the agent's settings, extra patterns included."""
        settings = load_settings(
            namespace="prod", host_name="pod-z", redact_keys=["ssn"], diff_max_changes=7
        )
        options = NormalizeOptions.from_settings(settings)
        assert (options.namespace, options.host_name, options.diff_max_changes) == (
            "prod",
            "pod-z",
            7,
        )
        assert options.redact_keys == ("ssn",)

    def test_bad_options_fail_at_construction(self) -> None:
        """A bad regex or cap is a ValueError when the Normalizer is built, not per line."""
        with pytest.raises(ValueError, match="invalid redact_values pattern"):
            Normalizer(NormalizeOptions(redact_values=("(",)))
        with pytest.raises(ValueError, match="diff_max_changes"):
            Normalizer(NormalizeOptions(diff_max_changes=0))
        with pytest.raises(ValueError, match="diff_max_depth"):
            Normalizer(NormalizeOptions(diff_max_depth=1000))

    def test_skips_and_rejections_are_typed(self) -> None:
        """Blank lines are skipped and non-objects rejected, each with a reason."""
        normalizer = Normalizer()
        assert normalizer(b"   ") == Skipped("empty line")
        assert normalizer(b"[1]") == Rejected(
            "line is an array, not a JSON object", stage=Stage.DECODE
        )


NODE = {"type": "appmixer.utils.http.Request", "config": {"url": "https://api.example.com"}}
SECRET_NODE = {
    "type": "appmixer.utils.http.Request",
    "config": {"headers": {"token": "T0k3nValue"}},
}
FLOW = {"id": "f1", "created": "2026-11-25T09:20:41.007Z", "action": "Flow Updated"}


def _changes(record: dict[str, Any]) -> list[dict[str, Any]]:
    return list(run(record).event["appmixer"]["audit"]["changes"])


class TestRenderedValues:
    def test_added_and_removed_objects(self) -> None:
        """Objects added or removed are rendered as their compact JSON."""
        record = {**FLOW, "before": {"a": NODE}, "after": {"b": NODE}}
        text = orjson.dumps(NODE).decode()
        assert _changes(record) == [
            {"path": "/a", "op": "remove", "old": text},
            {"path": "/b", "op": "add", "new": text},
        ]

    @pytest.mark.parametrize("side", ["before", "after"])
    def test_objects_holding_secrets(self, side: str) -> None:
        """An added or removed object holding a secret is rendered redacted, whichever
        state it comes from, and whether or not the other state holds secrets too."""
        other = "after" if side == "before" else "before"
        for other_state in ({"c": NODE}, {"c": SECRET_NODE}):
            record = {**FLOW, side: {"n": SECRET_NODE}, other: other_state}
            output = orjson.dumps([run(record).event, run(record).changes]).decode()
            assert "T0k3nValue" not in output
            rendered = [c for c in _changes(record) if c["path"] == "/n"]
            assert len(rendered) == 1
            assert '{"headers":{"token":"[REDACTED]"}}' in (
                rendered[0].get("old") or rendered[0]["new"]
            )

    def test_precomputed_values_are_always_cleaned(self) -> None:
        """A service's own diff is cleaned too, even beside a state with nothing to hide."""
        record = {
            **FLOW,
            "before": {"name": "plain"},
            "diff": [{"path": "/n", "old": SECRET_NODE, "new": {"note": "Bearer abcdefghijkl"}}],
        }
        changes = _changes(record)
        assert (
            changes[0]["old"]
            == orjson.dumps(
                {"type": SECRET_NODE["type"], "config": {"headers": {"token": "[REDACTED]"}}}
            ).decode()
        )
        assert changes[0]["new"] == '{"note":"Bearer [REDACTED]"}'

    def test_values_cut_to_the_cap(self) -> None:
        """A long object from a clean state is still cut to the value cap."""
        big = {"items": ["x" * 50] * 10}
        record = {**FLOW, "before": {}, "after": {"big": big}}
        changes = run(record, diff_max_value_chars=100).event["appmixer"]["audit"]["changes"]
        text = orjson.dumps(big).decode()
        assert changes[0]["new"] == f"{text[:100]}…[truncated {len(text) - 100} chars]"


class TestResultTypes:
    def test_values_compare_by_content(self) -> None:
        """Sources and outcomes are values: equal by content, a source hashed by content.

        Made for every line, they are plain classes rather than frozen dataclasses
        (``common.value``): never changed once made, by convention rather than enforcement.
        """
        source = Source("a.log", "1:2:3", 7, "pod-a")
        assert source == Source(path="a.log", file_id="1:2:3", offset=7, host="pod-a")
        assert source != Source("a.log", "1:2:3", 8, "pod-a")
        assert hash(source) == hash(Source("a.log", "1:2:3", 7, "pod-a"))
        assert len({source, Source("a.log", "1:2:3", 7, "pod-a")}) == 1
        assert repr(source) == "Source(path='a.log', file_id='1:2:3', offset=7, host='pod-a')"
        outcome = run(UPDATE)
        assert isinstance(outcome, Normalized)
        assert outcome == Normalized(outcome.event_id, outcome.event, outcome.changes)
        assert outcome != Normalized("x", outcome.event, outcome.changes)
        assert outcome != (outcome.event_id, outcome.event, outcome.changes)

    def test_derived_id_recipe(self) -> None:
        """A derived id is SHA-256 over each of host, file id and offset, length-prefixed,
        then the raw line: recomputable outside the agent."""
        record = {key: value for key, value in UPDATE.items() if key != "id"}
        line = orjson.dumps(record)
        digest = hashlib.sha256()
        for part in (SOURCE.file_id, str(SOURCE.offset)):
            digest.update(b"%d:%b" % (len(part.encode()), part.encode()))
        digest.update(line)
        outcome = Normalizer(NormalizeOptions(host_name="pod-a"))(line, SOURCE)
        assert isinstance(outcome, Normalized)
        assert outcome.event_id == "auto-" + digest.hexdigest()[:32]


class TestLineEndings:
    def test_derived_id_ignores_the_line_ending(self) -> None:
        """The same line with "\\n", "\\r\\n" or no ending gets the same derived id."""
        from agent.normalize import Normalized, Normalizer, Source

        normalizer = Normalizer()
        body = b'{"created":"2026-11-25T10:00:00Z","action":"Flow Started","email":"a@x.example"}'
        source = Source("/var/log/audit.log", "f1", 0, "host-a")
        ids = set()
        for ending in (b"", b"\n", b"\r\n"):
            outcome = normalizer(body + ending, source)
            assert isinstance(outcome, Normalized)
            ids.add(outcome.event_id)
        assert len(ids) == 1
