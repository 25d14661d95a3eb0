"""Input aliases and logger envelopes: every spelling a service uses lands in the same field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.normalize import Normalized, NormalizeOptions, Normalizer, Rejected, Skipped
from devtools.simulate import iter_events
from tests.unit.document_models import AuditRecord

BASE: dict[str, Any] = {"action": "Flow Updated", "created": "2026-11-25T09:00:00Z"}
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson"


def normalize(record: Any, **options: Any) -> Normalized:
    outcome = Normalizer(NormalizeOptions(host_name="h", **options))(orjson.dumps(record))
    assert isinstance(outcome, Normalized), outcome
    return outcome


def get(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# (extra input, output field, expected value); each alias alone, on top of BASE.
ALIASES = [
    ({"id": "e-1"}, "event.id", "e-1"),
    ({"_id": "e-2"}, "event.id", "e-2"),
    ({"eventId": "e-3"}, "event.id", "e-3"),
    ({"auditId": "e-4"}, "event.id", "e-4"),
    ({"id": 42}, "event.id", "42"),
    ({"_id": {"$oid": "6745a1f0c1d2e3f405060701"}}, "event.id", "6745a1f0c1d2e3f405060701"),
    ({"action": "flow.started"}, "event.action", "flow.started"),
    ({"action": None, "event": "Flow Started"}, "event.action", "flow.started"),
    ({"action": None, "eventName": "Flow Stopped"}, "event.action", "flow.stopped"),
    ({"type": "delete"}, "appmixer.audit.type", "delete"),
    ({"type": "UPDATE"}, "appmixer.audit.type", "update"),
    ({"userId": "u1"}, "user.id", "u1"),
    ({"email": "a@x.example"}, "user.email", "a@x.example"),
    ({"user": {"id": "u2"}}, "user.id", "u2"),
    ({"user": {"email": "b@x.example"}}, "user.email", "b@x.example"),
    ({"user": {"name": "Bea"}}, "user.name", "Bea"),
    ({"actor": {"id": "u3"}}, "user.id", "u3"),
    ({"actor": {"email": "c@x.example"}}, "user.email", "c@x.example"),
    ({"actor": {"name": "Cy"}}, "user.name", "Cy"),
    ({"userEmail": "d@x.example"}, "user.email", "d@x.example"),
    ({"userName": "Di"}, "user.name", "Di"),
    ({"user": "e@x.example"}, "user.email", "e@x.example"),
    ({"actor": "u4"}, "user.id", "u4"),
    ({"flowId": "f1"}, "appmixer.flow.id", "f1"),
    ({"flow": {"id": "f2"}}, "appmixer.flow.id", "f2"),
    ({"flow": "f3"}, "appmixer.flow.id", "f3"),
    ({"entity": {"type": "template"}}, "appmixer.entity.type", "template"),
    ({"entity": {"id": "t1"}}, "appmixer.entity.id", "t1"),
    ({"entity": {"name": "Leads"}}, "appmixer.entity.name", "Leads"),
    ({"entityType": "connector"}, "appmixer.entity.type", "connector"),
    ({"entityId": "appmixer.slack"}, "appmixer.entity.id", "appmixer.slack"),
    ({"entityName": "Slack"}, "appmixer.entity.name", "Slack"),
    ({"tenantId": "acme"}, "appmixer.tenant.id", "acme"),
    ({"tenant": "globex"}, "appmixer.tenant.id", "globex"),
    ({"tenant": {"id": "initech"}}, "appmixer.tenant.id", "initech"),
    ({"ip": "198.51.100.23"}, "source.ip", "198.51.100.23"),
    ({"clientIp": "2001:db8::1"}, "source.ip", "2001:db8::1"),
    ({"remoteAddress": "::ffff:203.0.113.7"}, "source.ip", "203.0.113.7"),
    ({"ip": "198.51.100.23:4431"}, "source.ip", "198.51.100.23"),
    ({"ip": "203.0.113.9, 10.0.0.1"}, "source.ip", "203.0.113.9"),
    ({"ip": "[2001:db8::2]:443"}, "source.ip", "2001:db8::2"),
    ({"userAgent": "curl/8"}, "user_agent.original", "curl/8"),
    ({"headers": {"user-agent": "curl/9"}}, "user_agent.original", "curl/9"),
    ({"headers": {"User-Agent": "curl/10"}}, "user_agent.original", "curl/10"),
    ({"before": {"a": 1}}, "appmixer.audit.before", {"a": 1}),
    ({"after": [1, 2]}, "appmixer.audit.after", [1, 2]),
    ({"diff": [{"path": "/a", "old": 1, "new": 2}]}, "appmixer.audit.changes_count", 1),
    ({"changes": [{"op": "remove", "path": "/a"}]}, "appmixer.audit.changes_count", 1),
    ({"outcome": "failure"}, "event.outcome", "failure"),
    ({"status": "failed"}, "event.outcome", "failure"),
    ({"status": 500}, "event.outcome", "failure"),
    ({"status": "ok"}, "event.outcome", "success"),
    ({"data": {"k": 1}}, "appmixer.audit.data", {"k": 1}),
    ({"details": "why"}, "appmixer.audit.data", "why"),
    ({"meta": [1]}, "appmixer.audit.data", [1]),
    ({"reason": "invalid password"}, "event.reason", "invalid password"),
    ({"target": {"id": "u9"}}, "user.target.id", "u9"),
    ({"target": "t@x.example"}, "user.target.email", "t@x.example"),
    ({"targetUser": {"email": "t2@x.example"}}, "user.target.email", "t2@x.example"),
    ({"targetUserId": "u8"}, "user.target.id", "u8"),
    ({"targetEmail": "t3@x.example"}, "user.target.email", "t3@x.example"),
    ({"targetUserEmail": "t4@x.example"}, "user.target.email", "t4@x.example"),
    ({"target": {"name": "Tia"}}, "user.target.name", "Tia"),
    ({"entity": {"type": "user", "id": "u7", "name": "Ugo"}}, "user.target.id", "u7"),
    ({"entity": {"type": "User", "name": "Ugo"}}, "user.target.name", "Ugo"),
    ({"entity": {"type": "user", "name": "ugo@x.example"}}, "user.target.email", "ugo@x.example"),
]
TIMES = ["created", "createdAt", "timestamp", "time", "@timestamp"]


def _label(case: tuple[dict[str, Any], str, Any]) -> str:
    return ",".join(case[0]) + "->" + case[1]


class TestAliases:
    @pytest.mark.parametrize("case", ALIASES, ids=[_label(case) for case in ALIASES])
    def test_each_alias(self, case: tuple[dict[str, Any], str, Any]) -> None:
        """Every accepted spelling of a field fills the same document field."""
        extra, field, expected = case
        record = {key: value for key, value in {**BASE, **extra}.items() if value is not None}
        assert get(normalize(record).event, field) == expected

    @pytest.mark.parametrize("name", TIMES)
    def test_each_time_alias(self, name: str) -> None:
        """Every time alias sets @timestamp, as ISO text or epoch milliseconds."""
        iso = normalize({"action": "Flow Updated", name: "2026-11-25T10:00:00+01:00"})
        epoch = normalize({"action": "Flow Updated", name: 1795597200000})
        assert iso.event["@timestamp"] == "2026-11-25T09:00:00.000Z"
        assert epoch.event["@timestamp"] == "2026-11-25T09:00:00.000Z"

    def test_first_alias_wins(self) -> None:
        """When several aliases are present, the first in the alias table's order is used."""
        record = {
            **BASE,
            "createdAt": 0,
            "userId": "first",
            "user": {"id": "second", "email": "u@x.example"},
            "actor": {"id": "third"},
            "email": "first@x.example",
            "flowId": "f-first",
            "flow": {"id": "f-second"},
        }
        doc = normalize(record).event
        assert doc["@timestamp"] == "2026-11-25T09:00:00.000Z"
        assert get(doc, "user.id") == "first"
        assert get(doc, "user.email") == "first@x.example"
        assert get(doc, "appmixer.flow.id") == "f-first"

    def test_null_and_empty_count_as_absent(self) -> None:
        """A null or empty alias gives way to the next one."""
        record = {**BASE, "userId": None, "user": {"id": "", "email": None}, "actor": {"id": "a"}}
        record["id"] = ""
        doc = normalize(record).event
        assert get(doc, "user.id") == "a"
        assert doc["event"]["id"].startswith("auto-")

    def test_unusable_values_are_left_out(self) -> None:
        """Objects where text is expected, and odd IPs, leave their field out."""
        record = {**BASE, "userId": {"nested": 1}, "email": ["x"], "ip": "999.1.1.1"}
        doc = normalize(record).event
        assert "user" not in doc
        assert "source" not in doc
        assert "related" not in doc

    def test_related_fields(self) -> None:
        """related.user collects actor and target ids, emails and names once each."""
        record = {**BASE, "userId": "u1", "email": "a@x.example", "ip": "192.0.2.1"}
        record["entity"] = {"type": "user", "id": "u1", "name": "b@x.example"}
        doc = normalize(record).event
        assert doc["related"] == {"user": ["u1", "a@x.example", "b@x.example"], "ip": ["192.0.2.1"]}


class TestEnvelopes:
    def test_pino_envelope(self) -> None:
        """A pino line's record under ``audit`` is the event; the envelope's time fills in."""
        line = {"level": 30, "time": 1795597200000, "pid": 1, "msg": "audit",
                "audit": {"action": "Flow Started", "userId": "u1"}}  # fmt: skip
        doc = normalize(line).event
        assert doc["@timestamp"] == "2026-11-25T09:00:00.000Z"
        assert doc["event"]["action"] == "flow.started"
        assert doc["user"]["id"] == "u1"

    def test_bunyan_envelope(self) -> None:
        """A bunyan line (ISO time, numeric level) works the same way."""
        line = {"v": 0, "level": 30, "name": "api", "time": "2026-11-25T09:00:00.000Z",
                "msg": "audit", "audit": {"action": "Flow Stopped"}}  # fmt: skip
        assert normalize(line).event["@timestamp"] == "2026-11-25T09:00:00.000Z"

    def test_inner_time_wins(self) -> None:
        """The record's own time beats the envelope's."""
        line = {"time": 0, "audit": {"action": "Flow Stopped", "created": "2026-11-25T09:00:00Z"}}
        assert normalize(line).event["@timestamp"] == "2026-11-25T09:00:00.000Z"

    def test_custom_envelope_key(self) -> None:
        """The envelope key is configurable."""
        line = {"time": 0, "msg": "audit", "record": {"action": "Flow Stopped"}}
        assert normalize(line, envelope_key="record").event["event"]["action"] == "flow.stopped"

    def test_envelope_without_action_is_rejected(self) -> None:
        """An envelope holding a record without action is a broken audit record."""
        outcome = Normalizer()(b'{"time": 0, "audit": {"userId": "u"}}')
        assert isinstance(outcome, Rejected)
        assert outcome.field == "audit.action"

    def test_envelope_field_names_in_reasons(self) -> None:
        """A bad value inside an envelope is named with its path."""
        outcome = Normalizer()(b'{"audit": {"action": "Flow Stopped", "created": "soon"}}')
        assert isinstance(outcome, Rejected)
        assert outcome.field == "audit.created"
        assert outcome.reason.startswith("field 'audit.created': 'soon'")

    def test_service_log_line_is_skipped(self) -> None:
        """A pino line that carries no audit record is skipped, not rejected."""
        outcome = Normalizer()(b'{"level":30,"time":1,"msg":"GET /flows 200 12ms"}')
        assert isinstance(outcome, Skipped)

    def test_non_object_envelope_is_ignored(self) -> None:
        """An ``audit`` key that holds no object is just a field of a bare record."""
        assert normalize({**BASE, "audit": True}).event["event"]["action"] == "flow.updated"


def _records() -> list[Any]:
    lines = SAMPLE.read_bytes().splitlines()
    sample = [orjson.loads(line) for line in lines if line.startswith(b"{")]
    aliased = [{**BASE, **extra} for extra, _field, _value in ALIASES]
    return [*sample, *iter_events(300, seed=9), *aliased]


class TestModelAgreement:
    @pytest.mark.parametrize("record", _records())
    def test_model_resolves_like_the_pipeline(self, record: Any) -> None:
        """The pydantic input model and the fast path resolve every record to the same values."""
        record = {key: value for key, value in record.items() if value is not None}
        outcome = Normalizer(NormalizeOptions(host_name="h"))(orjson.dumps(record))
        if not isinstance(outcome, Normalized):
            with pytest.raises(ValueError):  # noqa: PT011 (pydantic's ValidationError)
                AuditRecord.model_validate(record)
            return
        model = AuditRecord.model_validate(record)
        doc = outcome.event
        assert model.time == doc["@timestamp"]
        assert model.user_id == get(doc, "user.id")
        assert model.user_email == get(doc, "user.email")
        assert model.flow_id == get(doc, "appmixer.flow.id")
        assert model.entity_type == get(doc, "appmixer.entity.type")
        assert model.entity_id == get(doc, "appmixer.entity.id")
        assert model.tenant_id == get(doc, "appmixer.tenant.id")
        assert model.ip == get(doc, "source.ip")
        assert model.user_agent == get(doc, "user_agent.original")
        if model.id is not None:
            assert model.id == doc["event"]["id"]
