"""appmixer.related.id: every identifier an event mentions, redacted states only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent.normalize import Normalized, NormalizeOptions, Normalizer
from agent.normalize.related import MAX_DEPTH, MAX_IDS, related_ids, shaped_like_id
from tests.unit.document_models import EventDocument

SOURCE_FLOW = "9c4673d7-a550-45a2-91c1-ad057fac0385"
NEW_FLOW = "0b1f6a4e-2f9d-4c3e-9e0a-7d2c5b8a1f33"


def related(record: dict[str, Any], **options: Any) -> list[str] | None:
    outcome = Normalizer(NormalizeOptions(host_name="h", **options))(orjson.dumps(record))
    assert isinstance(outcome, Normalized), outcome
    EventDocument.model_validate(outcome.event)
    found = outcome.event["appmixer"].get("related")
    return None if found is None else list(found["id"])


def event(**fields: Any) -> dict[str, Any]:
    return {"created": "2026-11-25T11:05:00Z", "action": "Flow Updated", **fields}


class TestEventDocument:
    def test_clone_names_its_source_flow(self) -> None:
        """A clone's source flow id, only inside data, is collected after the flow's own id."""
        record = event(action="Flow Cloned", flowId=NEW_FLOW, data={"sourceFlowId": SOURCE_FLOW})
        assert related(record) == [NEW_FLOW, SOURCE_FLOW]

    def test_own_references_first_and_once(self) -> None:
        """Flow and entity ids lead; a value seen again in the states is not repeated."""
        record = event(
            flowId="f1",
            entity={"type": "template", "id": "tpl_1"},
            before={"flowId": "f1", "templateId": "tpl_1"},
            after={"flowId": "f1", "templateId": "tpl_2"},
        )
        assert related(record) == ["f1", "tpl_1", "tpl_2"]

    def test_no_identifier_no_field(self) -> None:
        """An event that mentions no id carries no appmixer.related at all."""
        assert related(event(action="Login Failed", email="a@b.example")) is None

    def test_redacted_values_are_never_collected(self) -> None:
        """A secret under an id-like key is hidden first, so it never reaches the field."""
        record = event(
            data={"sessionId": "s3cr3t-session", "headers": {"authorization": "Bearer abc.def"}},
            after={"apiKeyId": "sk_live_abcdefghijklmnopqrstuvwx"},
        )
        found = related(record) or []
        assert "s3cr3t-session" not in found
        assert not any("sk_live" in value or "REDACTED" in value for value in found)

    def test_extra_redaction_patterns_apply(self) -> None:
        """A configured value pattern hides an id-shaped value before collection."""
        record = event(data={"customerId": "cust-4242"})
        assert related(record) == ["cust-4242"]
        assert related(record, redact_values=[r"cust-\d+"]) is None


class TestRelatedIds:
    @pytest.mark.parametrize(
        ("state", "expected"),
        [
            ({"id": "a1"}, ["a1"]),
            ({"templateId": "t1", "x-request-id": "r1", "parent_id": 7}, ["t1", "r1", "7"]),
            ({"flowIds": ["f1", "f2"], "user_ids": ["u1"]}, ["f1", "f2", "u1"]),
            ({"nested": [{"deep": {"componentId": "c1"}}]}, ["c1"]),
            ({"note": "6745a1f0c1d2e3f405060701"}, ["6745a1f0c1d2e3f405060701"]),
            (["9c4673d7-a550-45a2-91c1-ad057fac0385"], [SOURCE_FLOW]),
        ],
    )
    def test_identifier_like_values(self, state: Any, expected: list[str]) -> None:
        """Values under id-naming keys, lists under plural keys, and id-shaped strings."""
        assert related_ids([], (state,)) == expected

    @pytest.mark.parametrize(
        "state",
        [
            {"name": "Sync leads", "valid": "yes", "paid": "no"},
            {"flowId": "two words"},
            {"flowId": ""},
            {"flowId": True},
            {"flowId": {"nested": "object"}},
            {"flowId": "x" * 1025},
            {"stage": "running", "count": 3},
        ],
    )
    def test_not_identifiers(self, state: Any) -> None:
        """Plain values, sentences, booleans, empty and over-long text are left out."""
        assert related_ids([], (state,)) == []

    def test_absent_states_are_skipped(self) -> None:
        """Markers for absent states (not containers or strings) are ignored."""
        assert related_ids(["f1"], (object(), None, {"id": "x"})) == ["f1", "x"]

    def test_bounded_count(self) -> None:
        """At most MAX_IDS values, however many a state holds."""
        state = {"items": [{"id": f"i{n}"} for n in range(MAX_IDS * 3)]}
        found = related_ids([], (state,))
        assert len(found) == MAX_IDS
        assert found[:2] == ["i0", "i1"]

    def test_bounded_depth(self) -> None:
        """Nothing deeper than MAX_DEPTH levels is looked at."""
        shallow: Any = {"id": "top"}
        deep: Any = {"id": "bottom"}
        for _ in range(MAX_DEPTH + 1):
            deep = {"child": deep}
        assert related_ids([], (shallow, deep)) == ["top"]

    @pytest.mark.parametrize(
        ("text", "shaped"),
        [
            ("6745a1f0c1d2e3f405060701", True),
            ("9C4673D7-A550-45A2-91C1-AD057FAC0385", True),
            ("6745a1f0c1d2e3f40506070g", False),
            ("9c4673d7-a550-45a2-91c1-ad057fac038", False),
            ("9c4673d7xa550-45a2-91c1-ad057fac0385", False),
            ("9c4673d7-a550-45a2-91c1-ad057fac-385", False),
            ("hello", False),
        ],
    )
    def test_shapes(self, text: str, shaped: bool) -> None:
        """ObjectIds and UUIDs only, checked without regular expressions."""
        assert shaped_like_id(text) is shaped
