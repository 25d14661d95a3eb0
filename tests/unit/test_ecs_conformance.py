"""ECS conformance against the official definitions (npm ``@elastic/ecs``, pinned).

Over the sample, a large simulated mix, the hostile corpus and the detection rules'
scenario days: every field outside
``appmixer.*`` is an ECS field (or a leaf of an ECS object or flattened field) that
``mappings/`` maps with the ECS type; categorization values are allowed and each
``event.type`` is one ECS expects for the event's category; ``ecs.version`` is the release
checked. Planted mistakes show that the check can fail.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source
from agent.normalize.catalog import CATALOG, classify
from agent.normalize.document import ECS_VERSION
from devtools.scenarios import SCENARIOS, iter_day
from devtools.simulate import write_events
from indexer.fields import Target, mapped_fields
from tests.ecs.conformance import Checker, covering, mapping_problems
from tests.ecs.schema import EcsSchema, export_path, load, pinned_version
from tests.unit.corpus.hostile import OK, cases

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson"
SIMULATED_EVENTS = 20_000


@pytest.fixture(scope="module")
def ecs() -> EcsSchema:
    """The pinned ECS definitions; in CI their absence fails, elsewhere it skips."""
    try:
        return load()
    except FileNotFoundError:
        reason = f"ECS definitions not installed at {export_path()}: run `make ecs-schema`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _normalize(lines: Iterator[bytes], name: str) -> Iterator[Normalized]:
    normalizer = Normalizer(NormalizeOptions(host_name="ecs-check", diff_max_depth=256))
    offset = 0
    for line in lines:
        outcome = normalizer(line, Source(f"/logs/{name}", name, offset, "ecs-check"))
        offset += len(line)
        if isinstance(outcome, Normalized):
            yield outcome


def _simulated() -> Iterator[bytes]:
    out = io.BytesIO()
    write_events(out, SIMULATED_EVENTS, seed=13, noise=0.02)
    return iter(out.getvalue().splitlines(keepends=True))


CORPORA = {
    "sample": lambda: iter(SAMPLE.read_bytes().splitlines(keepends=True)),
    "simulated": _simulated,
    "hostile": lambda: (case.line + b"\n" for case in cases() if case.outcome == OK),
    "scenario days": lambda: (
        orjson.dumps(record) + b"\n" for day in SCENARIOS for record in iter_day(day)
    ),
}


def _problems(ecs: EcsSchema, results: Iterator[Normalized]) -> tuple[int, list[str]]:
    events, changes = Checker(mapped_fields("events"), ecs), Checker(mapped_fields("changes"), ecs)
    seen: list[str] = []
    count = 0
    for result in results:
        count += 1
        seen.extend(f"{result.event_id}: {p}" for p in events(result.event))
        for change_id, doc in result.changes:
            seen.extend(f"{change_id}: {p}" for p in changes(doc))
    return count, seen


class TestPinnedRelease:
    def test_documents_claim_the_checked_release(self, ecs: EcsSchema) -> None:
        """The normalizer's ecs.version is the release the lock file pins and the test reads."""
        assert ecs.version == pinned_version() == ECS_VERSION


class TestMappings:
    @pytest.mark.parametrize("target", ["events", "changes"])
    def test_every_mapped_field_has_the_ecs_type(self, ecs: EcsSchema, target: Target) -> None:
        """Outside appmixer.* (and log.offset), each mapped field is ECS's, with ECS's type."""
        assert mapping_problems(mapped_fields(target), ecs) == []


class TestCatalog:
    @pytest.mark.parametrize("entry", CATALOG, ids=[entry.code for entry in CATALOG])
    def test_categorization_is_allowed(self, ecs: EcsSchema, entry: Any) -> None:
        """Each of the 28 kinds: allowed values, each type expected for its categories."""
        document = {
            "event": {
                "kind": "event",
                "category": list(entry.category),
                "type": list(entry.ecs_type),
                "outcome": entry.outcome or "success",
            }
        }
        assert Checker(mapped_fields("events"), ecs).categorization(document) == []

    @pytest.mark.parametrize(
        "name", ["Webhook Rotated", "Access Token Created", "Key Revoked", "Report Exported"]
    )
    def test_unknown_actions_are_categorized_too(self, ecs: EcsSchema, name: str) -> None:
        """An action outside the catalog gets a category and a verb-guessed type ECS allows."""
        entry = classify(name)
        assert entry.catalog is False
        document = {"event": {"category": list(entry.category), "type": list(entry.ecs_type)}}
        assert Checker(mapped_fields("events"), ecs).categorization(document) == []


class TestDocuments:
    @pytest.mark.parametrize("corpus", list(CORPORA))
    def test_documents_conform(self, ecs: EcsSchema, corpus: str) -> None:
        """Every event and change document of the corpus passes every check."""
        count, problems = _problems(ecs, _normalize(CORPORA[corpus](), corpus))
        assert count > 0
        assert problems[:20] == []

    def test_change_documents_are_not_audit_events(self, ecs: EcsSchema) -> None:
        """Change documents are ECS enrichment, with no categorization a rule could match."""
        results = list(_normalize(CORPORA["sample"](), "sample"))
        changes = [doc for result in results for _id, doc in result.changes]
        assert changes
        assert "enrichment" in ecs.allowed("event.kind")
        for doc in changes:
            assert doc["event"]["kind"] == "enrichment"
            assert {"category", "type", "outcome"}.isdisjoint(doc["event"])


NOT_ECS = "not an ECS field, and custom fields belong under appmixer.*"
GOOD_EVENT: dict[str, Any] = {
    "@timestamp": "2026-11-25T09:00:00.000Z",
    "event": {"kind": "event", "category": ["iam"], "type": ["user", "change"]},
    "organization": {"id": "acme"},
    "ecs": {"version": ECS_VERSION},
    "appmixer": {"audit": {"type": "update"}},
}


class TestPlantedMistakes:
    def check(self, ecs: EcsSchema, document: dict[str, Any]) -> list[str]:
        return Checker(mapped_fields("events"), ecs)(document)

    def test_good_event_passes(self, ecs: EcsSchema) -> None:
        """The base of the planted cases is itself clean, so each failure is the mistake's."""
        assert self.check(ecs, GOOD_EVENT) == []

    def test_wrong_ecs_type_in_the_mapping(self, ecs: EcsSchema) -> None:
        """source.ip mapped as keyword (ECS: ip) fails, naming both types."""
        mapped = dict(mapped_fields("events"))
        mapped["source.ip"] = replace(mapped["source.ip"], type="keyword")
        assert mapping_problems(mapped, ecs) == [
            f"source.ip: mappings/ says keyword, ECS {ecs.version} says ip"
        ]

    def test_wrong_multi_field_type(self, ecs: EcsSchema) -> None:
        """user.name.text as text (ECS: match_only_text) fails."""
        mapped = dict(mapped_fields("events"))
        mapped["user.name"] = replace(mapped["user.name"], subfields=(("text", "text"),))
        assert mapping_problems(mapped, ecs) == [
            "user.name.text: mappings/ says text, ECS says match_only_text"
        ]

    def test_unmapped_ecs_field(self, ecs: EcsSchema) -> None:
        """An ECS field a document writes but mappings/ does not map fails."""
        problems = self.check(ecs, {**GOOD_EVENT, "service": {"name": "api"}})
        assert problems == ["service.name: an ECS field that mappings/ does not map"]

    def test_disallowed_category_value(self, ecs: EcsSchema) -> None:
        """event.category "audit" is not an ECS value."""
        event = {**GOOD_EVENT["event"], "category": ["audit"]}
        problems = self.check(ecs, {**GOOD_EVENT, "event": event})
        assert "event.category: 'audit' is not an allowed value" in problems

    def test_type_not_expected_for_category(self, ecs: EcsSchema) -> None:
        """authentication with type creation: allowed words, wrong pairing."""
        event = {**GOOD_EVENT["event"], "category": ["authentication"], "type": ["creation"]}
        assert self.check(ecs, {**GOOD_EVENT, "event": event}) == [
            "event.type: 'creation' is not expected for event.category ['authentication']"
        ]

    def test_disallowed_kind_and_outcome(self, ecs: EcsSchema) -> None:
        """event.kind and event.outcome are held to their lists too."""
        event = {**GOOD_EVENT["event"], "kind": "audit", "outcome": "ok"}
        assert self.check(ecs, {**GOOD_EVENT, "event": event}) == [
            "event.kind: 'audit' is not an allowed value",
            "event.outcome: 'ok' is not an allowed value",
        ]

    def test_custom_field_outside_appmixer(self, ecs: EcsSchema) -> None:
        """tenant.id at the root is neither ECS nor under appmixer.*."""
        problems = self.check(ecs, {**GOOD_EVENT, "tenant": {"id": "acme"}})
        assert problems == [f"tenant.id: {NOT_ECS}"]

    def test_custom_field_inside_an_ecs_field_set(self, ecs: EcsSchema) -> None:
        """user.tenant is not an ECS field even though user is an ECS field set."""
        problems = self.check(ecs, {**GOOD_EVENT, "user": {"tenant": "acme"}})
        assert problems == [f"user.tenant: {NOT_ECS}"]

    def test_leaf_of_an_ecs_object_is_allowed(self, ecs: EcsSchema) -> None:
        """labels is an ECS object: any key inside it is ECS's."""
        assert covering(ecs, "labels.team") is not None
        assert covering(ecs, "labels.team").name == "labels"  # type: ignore[union-attr]

    def test_scalar_where_ecs_expects_an_array(self, ecs: EcsSchema) -> None:
        """event.category as a bare string fails: ECS normalizes it to an array."""
        event = {**GOOD_EVENT["event"], "category": "iam"}
        problems = self.check(ecs, {**GOOD_EVENT, "event": event})
        assert problems == ["event.category: ECS expects an array, the document has 'iam'"]

    def test_claimed_version_must_be_the_checked_one(self, ecs: EcsSchema) -> None:
        """A document claiming another ECS release fails."""
        problems = self.check(ecs, {**GOOD_EVENT, "ecs": {"version": "8.17.0"}})
        assert problems == [f"ecs.version: claims 8.17.0, checked against {ecs.version}"]
