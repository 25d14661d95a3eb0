"""Hostile input: every line ends as a document, a skip or a specific rejection, never a raise."""

from __future__ import annotations

import orjson
import pytest

from agent.normalize import Normalized, NormalizeOptions, Normalizer, Rejected, Skipped, Source
from tests.unit.corpus.hostile import OK, REJECT, SKIP, Case, cases
from tests.unit.document_models import ChangeDocument, EventDocument

CASES = cases()
NORMALIZER = Normalizer(NormalizeOptions(host_name="corpus", diff_max_depth=256))


def _outcome(case: Case) -> object:
    return NORMALIZER(case.line, Source("corpus.ndjson", "1:2:3", 0, "corpus"))


class TestHostileCorpus:
    @pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
    def test_outcome(self, case: Case) -> None:
        """The line gets the outcome it must get, with a reason naming the problem."""
        outcome = _outcome(case)
        assert type(outcome).__name__ == case.outcome, outcome
        if isinstance(outcome, Rejected | Skipped):
            assert case.reason in outcome.reason
            assert not outcome.reason.startswith("cannot normalize")  # no internal error

    @pytest.mark.parametrize(
        "case", [case for case in CASES if case.outcome == OK], ids=lambda case: case.name
    )
    def test_documents_are_valid_and_serializable(self, case: Case) -> None:
        """Documents from hostile input still satisfy the contract and encode as JSON."""
        outcome = _outcome(case)
        assert isinstance(outcome, Normalized)
        EventDocument.model_validate(outcome.event)
        for change_id, doc in outcome.changes:
            ChangeDocument.model_validate(doc)
            assert len(change_id.encode()) <= 512
        assert len(orjson.dumps(outcome.event)) < 4 << 20

    def test_corpus_covers_every_kind(self) -> None:
        """The corpus holds documents, skips and rejections."""
        assert {case.outcome for case in CASES} == {OK, SKIP, REJECT}

    def test_field_is_named(self) -> None:
        """Rejections about a value name the field it sat in."""
        by_name = {case.name: _outcome(case) for case in CASES}
        assert isinstance(by_name["month 13"], Rejected)
        assert by_name["month 13"].field == "created"
        assert by_name["numeric action"].field == "action"  # type: ignore[union-attr]
        assert by_name["not JSON at all"].field is None  # type: ignore[union-attr]


class TestHostileValues:
    def _event(self, name: str) -> dict[str, object]:
        outcome = _outcome(next(case for case in CASES if case.name == name))
        assert isinstance(outcome, Normalized)
        return outcome.event

    def test_odd_ips(self) -> None:
        """Unparseable addresses are dropped, mapped IPv4 is unwrapped, zones are removed."""
        assert "source" not in self._event("ip 999.1.1.1")
        assert "source" not in self._event("ip localhost")
        assert "source" not in self._event("ip number")
        assert self._event("ip ::ffff:1.2.3.4")["source"] == {"ip": "1.2.3.4"}
        assert self._event("ip with zone")["source"] == {"ip": "fe80::1"}

    def test_huge_and_deep_values_are_capped(self) -> None:
        """Huge strings are cut, deep states stop at the depth cap, big objects at the budget."""
        audit = self._event("2 MiB value")["appmixer"]["audit"]  # type: ignore[index]
        assert audit["after"]["blob"].endswith(f"…[truncated {(2 << 20) - 2048} chars]")
        deep = self._event("300-level before/after")["appmixer"]["audit"]  # type: ignore[index]
        assert deep["changes_truncated"] is True
        many = self._event("100,000 keys")["appmixer"]["audit"]  # type: ignore[index]
        assert many["after"]["…"] == "[truncated: 90000 more keys]"
        assert many["changes_count"] == 100_000
        assert len(many["changes"]) == 500

    def test_numbers_beyond_a_double_are_kept_as_text(self) -> None:
        """1e400 survives as its text instead of losing the event."""
        audit = self._event("1e400")["appmixer"]["audit"]  # type: ignore[index]
        assert audit["after"] == {"n": "1e400"}
        assert audit["changes"] == [{"path": "/n", "op": "replace", "old": "1", "new": "1e400"}]

    def test_duplicate_keys_last_wins(self) -> None:
        """With duplicate keys the last one counts, as in JavaScript."""
        assert self._event("duplicate keys")["event"]["action"] == "flow.stopped"  # type: ignore[index]

    def test_escaped_path_segments(self) -> None:
        """Keys with ``/`` and ``~`` are escaped in diff paths."""
        audit = self._event("keys with slash and tilde")["appmixer"]["audit"]  # type: ignore[index]
        assert audit["changes"][0]["path"] == "/a~1b/~0"
