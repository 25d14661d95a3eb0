"""The hash chain, signed checkpoints and the verify walk, without Elasticsearch."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent.evidence.chains import (
    Chains,
    Ledger,
    Place,
    Signer,
    chain_record,
    head_at,
    read_local_checkpoints,
    read_local_copy,
)
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source
from chain.checkpoint import ChainKey, Checkpoint, Gap, KeyFileError, SignedHead
from chain.link import GENESIS, Head, content_digest, link, step, stream_id
from chain.verify import (
    Evidence,
    Finding,
    Record,
    Report,
    StreamResult,
    assemble,
    gather,
    unchained,
    verify_stream,
)
from cli.verify import summary_line

KEY = ChainKey(b"k" * 32)
OTHER_KEY = ChainKey(b"o" * 32)
STREAM = stream_id("pod-a", "f" * 32)


def event(n: int, **extra: Any) -> dict[str, Any]:
    """A small stored-looking event document; the normalizer's content digest in event.hash."""
    doc: dict[str, Any] = {
        "@timestamp": f"2026-11-25T09:{n // 60:02d}:{n % 60:02d}.000Z",
        "event": {"id": f"evt-{n}", "action": "flow.updated"},
        "message": "Flow Updated",
        "appmixer": {"audit": {"type": "update"}},
        "log": {"file": {"path": "/var/log/audit.log"}, "offset": n * 100},
        **extra,
    }
    doc["event"]["hash"] = content_digest(doc)
    return doc


def chain_of(count: int, head: Head | None = None) -> tuple[list[dict[str, Any]], Head]:
    """``count`` chained documents as Elasticsearch would store them (with event.ingested)."""
    head = head if head is not None else Head.genesis(STREAM)
    docs = []
    start = head.seq
    for n in range(start + 1, start + count + 1):
        doc = event(n)
        head = step(head, doc["event"]["id"], doc)
        doc["event"]["ingested"] = "2026-11-25T10:00:00.000Z"
        docs.append(doc)
    return docs, head


def records(docs: list[dict[str, Any]]) -> list[Record]:
    return [Record.from_source(doc["event"]["id"], doc) for doc in docs]


def signed(heads: list[Head], gaps: list[Gap] = (), key: ChainKey = KEY, **kw: Any) -> Checkpoint:  # type: ignore[assignment]
    checkpoint = Checkpoint(
        host="pod-a",
        time=kw.get("time", "2026-11-25T10:00:00.000Z"),
        key_id=key.key_id,
        heads=[
            SignedHead(stream=h.stream, seq=h.seq, hash=h.hash, event_id=h.event_id) for h in heads
        ],
        gaps=list(gaps),
    )
    return checkpoint.signed(key)


def walk(docs: list[dict[str, Any]], *checkpoints: Checkpoint, since: datetime | None = None):  # type: ignore[no-untyped-def]
    evidence = gather(checkpoints, [KEY], since)
    return verify_stream(STREAM, records(docs), evidence)


def kinds(findings: list[Finding]) -> list[tuple[str, int | None, str | None]]:
    return [(f.kind, f.seq, f.event_id) for f in findings]


class TestLink:
    def test_normalizer_hash_is_the_content_digest(self) -> None:
        """The normalizer's event.hash is what verify recomputes from the stored document."""
        normalizer = Normalizer(NormalizeOptions(host_name="pod-a"))
        record = {"id": "e1", "created": "2026-11-25T09:20:41Z", "action": "Flow Updated"}
        line = orjson.dumps({**record, "before": {"a": 1}, "after": {"a": 2}})
        outcome = normalizer(line, Source("/l", "f", 0, "pod-a"))
        assert isinstance(outcome, Normalized)
        doc = outcome.event
        claimed = doc["event"]["hash"]
        step(Head.genesis(STREAM), "e1", doc)
        doc["event"]["ingested"] = "2026-11-25T10:00:00Z"
        assert content_digest(doc) == claimed

    def test_renamed_file_replays_identically(self) -> None:
        """A line read again under its rotated name chains the same: the path is not hashed."""
        normalizer = Normalizer(NormalizeOptions(host_name="pod-a"))
        line = orjson.dumps(
            {"id": "e1", "created": "2026-11-25T09:20:41Z", "action": "Flow Updated"}
        )
        docs = []
        for path in ("/l/audit.log", "/l/audit.log.1"):
            outcome = normalizer(line, Source(path, "f", 0, "pod-a"))
            assert isinstance(outcome, Normalized)
            step(Head.genesis(STREAM), "e1", outcome.event)
            docs.append(outcome.event)
        assert docs[0]["log"] != docs[1]["log"]
        assert docs[0]["event"]["hash"] == docs[1]["event"]["hash"]
        assert content_digest(docs[0]) == content_digest(docs[1])

    def test_step_sets_fields_and_advances(self) -> None:
        """Each step numbers the event, names its predecessor and replaces event.hash."""
        docs, head = chain_of(2)
        first, second = docs
        assert first["appmixer"]["chain"] == {"stream": STREAM, "seq": 1, "prev": GENESIS}
        assert second["appmixer"]["chain"] == {
            "stream": STREAM, "seq": 2, "prev": first["event"]["hash"], "prev_id": "evt-1",
        }  # fmt: skip
        assert head == Head(STREAM, 2, second["event"]["hash"], "evt-2")

    def test_step_is_deterministic(self) -> None:
        """The same content after the same head gives the same link: replays are 409s."""
        assert chain_of(3)[0] == chain_of(3)[0]
        docs, _ = chain_of(3)
        resumed, _ = chain_of(1, Head(STREAM, 2, docs[1]["event"]["hash"], "evt-2"))
        assert resumed[0] == docs[2]

    def test_link_covers_every_chain_field(self) -> None:
        """Changing the stream, position, predecessor or content changes the link."""
        base = link(STREAM, 3, GENESIS, "a", "c" * 64)
        assert base != link(STREAM + "x", 3, GENESIS, "a", "c" * 64)
        assert base != link(STREAM, 4, GENESIS, "a", "c" * 64)
        assert base != link(STREAM, 3, "1" * 64, "a", "c" * 64)
        assert base != link(STREAM, 3, GENESIS, "b", "c" * 64)
        assert base != link(STREAM, 3, GENESIS, "a", "d" * 64)

    def test_stream_ids_differ_by_host_content_and_start(self) -> None:
        """Two hosts, two files or two start offsets are two chains."""
        ids = {
            stream_id("a", "f"),
            stream_id("b", "f"),
            stream_id("a", "g"),
            stream_id("a", "f", 9),
        }
        assert len(ids) == 4

    def test_head_round_trips_and_rejects_junk(self) -> None:
        """Persisted chain state reads back, and anything malformed is an error."""
        head = Head(STREAM, 5, "a" * 64, "e5")
        assert Head.from_dict(head.as_dict()) == head
        for bad in (
            {},
            {"stream": STREAM, "seq": -1, "hash": "a" * 64},
            {"stream": STREAM, "seq": 1, "hash": "x"},
            [],
        ):
            with pytest.raises(ValueError, match="chain state"):
                Head.from_dict(bad)


class TestCheckpoint:
    def test_signature_verifies_only_under_its_key(self) -> None:
        """A signed checkpoint is valid under its key and invalid once any field changes."""
        checkpoint = signed([Head(STREAM, 3, "a" * 64, "e3")])
        assert checkpoint.valid_under(KEY)
        assert not checkpoint.valid_under(OTHER_KEY)
        edited = checkpoint.model_copy(
            update={"heads": [checkpoint.heads[0].model_copy(update={"seq": 2})]}
        )
        assert not edited.valid_under(KEY)

    def test_document_round_trip(self) -> None:
        """The stored document reads back into the same checkpoint; a stranger is refused."""
        checkpoint = signed([Head(STREAM, 3, "a" * 64, "e3")])
        stored = orjson.loads(orjson.dumps(checkpoint.to_document()))
        assert Checkpoint.from_document(stored) == checkpoint
        with pytest.raises(ValueError, match="not a checkpoint"):
            Checkpoint.from_document({"event": {}})
        with pytest.raises(ValueError, match="malformed"):
            Checkpoint.from_document({"appmixer": {"checkpoint": {"host": 1}}})

    def test_key_file(self, tmp_path: Path) -> None:
        """A key file is read without surrounding whitespace; short or absent: one clear error."""
        good = tmp_path / "key"
        good.write_text("x" * 40 + "\n")
        assert ChainKey.from_file(good).key_id == ChainKey(b"x" * 40).key_id
        short = tmp_path / "short"
        short.write_text("tiny\n")
        with pytest.raises(KeyFileError, match="at least 32"):
            ChainKey.from_file(short)
        with pytest.raises(KeyFileError, match="cannot read"):
            ChainKey.from_file(tmp_path / "absent")

    def test_key_never_shown(self) -> None:
        """The key's repr shows its id only."""
        assert "kkkk" not in repr(KEY)
        assert KEY.key_id in repr(KEY)


class TestVerify:
    def test_intact(self) -> None:
        """An untouched chain under its signed head: everything intact, nothing found."""
        docs, head = chain_of(10)
        result = walk(docs, signed([head]))
        assert result.findings == []
        assert result.intact == 10
        assert result.unsigned == 0

    def test_unsigned_tail_is_counted_not_failed(self) -> None:
        """Events after the last signed head are consistent but unsigned."""
        docs, _ = chain_of(10)
        head5 = Head(STREAM, 5, docs[4]["event"]["hash"], "evt-5")
        result = walk(docs, signed([head5]))
        assert result.findings == []
        assert (result.intact, result.unsigned) == (5, 5)

    def test_a_stream_wholly_before_since_is_not_counted(self) -> None:
        """``--since`` after a stream's last signed head, nothing newer: out of scope, not
        "a stream verified" (its events are read, and skipped, like any before the anchor)."""
        docs, head = chain_of(3)
        since = datetime(2026, 11, 25, 10, 0, 1, tzinfo=UTC)
        report = assemble([(STREAM, records(docs))], [], gather([signed([head])], [KEY], since))
        assert (report.streams, report.findings) == ([], [])

    def test_deleted_event_is_named(self) -> None:
        """A deleted event is missing, named by its successor's prev_id."""
        docs, head = chain_of(10)
        del docs[4]
        assert kinds(walk(docs, signed([head])).findings) == [("missing", 5, "evt-5")]

    def test_deleted_then_edited_next_to_it(self) -> None:
        """A deletion right before an edited event: one missing, one altered."""
        docs, head = chain_of(10)
        docs[5]["message"] = "edited"
        del docs[4]
        assert kinds(walk(docs, signed([head])).findings) == [
            ("missing", 5, "evt-5"), ("altered", 6, "evt-6"),
        ]  # fmt: skip

    def test_deleted_run_is_one_finding(self) -> None:
        """Several consecutive deletions are one run, the last one named."""
        docs, head = chain_of(10)
        del docs[3:6]
        (finding,) = walk(docs, signed([head])).findings
        assert (finding.kind, finding.seq, finding.last) == ("missing", 4, 6)
        assert "evt-6" in finding.detail

    def test_deleted_tail_found_against_signed_head(self) -> None:
        """Cutting off the newest events is caught by the signed head, which names the last."""
        docs, head = chain_of(10)
        result = walk(docs[:-1], signed([head]))
        assert kinds(result.findings) == [("missing", 10, "evt-10")]

    def test_edited_content(self) -> None:
        """An edited field, with chain fields left alone, is altered."""
        docs, head = chain_of(10)
        docs[6]["message"] = "Flow Deleted"
        assert kinds(walk(docs, signed([head])).findings) == [("altered", 7, "evt-7")]

    def test_edited_and_rehashed(self) -> None:
        """An edit whose link was recomputed breaks the next link: the edited one is named."""
        docs, head = chain_of(10)
        doc = docs[6]
        doc["message"] = "Flow Deleted"
        chain = doc["appmixer"]["chain"]
        doc["event"]["hash"] = link(STREAM, 7, chain["prev"], chain["prev_id"], content_digest(doc))
        assert kinds(walk(docs, signed([head])).findings) == [("altered", 7, "evt-7")]

    def test_whole_chain_recomputed(self) -> None:
        """Rewriting every link after an edit is consistent, but misses the signed head."""
        docs, head = chain_of(6)
        forged_docs = [copy.deepcopy(d) for d in docs]
        forged_docs[2]["message"] = "Nothing happened"
        rehead = Head.genesis(STREAM)
        for doc in forged_docs:
            doc["event"]["hash"] = content_digest(doc)
            rehead = step(rehead, doc["event"]["id"], doc)
        findings = walk(forged_docs, signed([head])).findings
        assert [(f.kind, f.seq, f.last) for f in findings] == [("altered", 1, 6)]

    def test_forged_copy_is_inserted(self) -> None:
        """A forged event with a copied position is a second event at that seq: inserted."""
        docs, head = chain_of(10)
        forged = copy.deepcopy(docs[3])
        forged["event"]["id"] = "forged"
        forged["message"] = "User Deleted"
        result = walk([*docs, forged], signed([head]))
        assert kinds(result.findings) == [("inserted", 4, "forged")]
        assert result.intact == 10

    def test_forged_valid_link_loses_to_the_chain(self) -> None:
        """Even a forged event with a correct link at a taken seq is the one left over: a
        second branch after seq 3, the signed one going on with the genuine evt-4."""
        docs, head = chain_of(10)
        forged = event(99)
        step(Head(STREAM, 3, docs[2]["event"]["hash"], "evt-3"), "evt-99", forged)
        (finding,) = walk([forged, *docs], signed([head])).findings
        assert (finding.kind, finding.seq, finding.event_id) == ("fork", 4, "evt-99")
        assert "the signed branch goes on with event evt-4" in finding.detail

    def test_unchained_event(self) -> None:
        """An event without chain fields is named as inserted."""
        forged = event(1)
        finding = unchained(Record.from_source("x", forged))
        assert (finding.kind, finding.event_id, finding.doc_id) == ("inserted", "evt-1", "x")

    def test_swapped_positions_are_out_of_order(self) -> None:
        """Two events whose seq fields were swapped: both out of order, nothing else."""
        docs, head = chain_of(10)
        a, b = docs[4]["appmixer"]["chain"], docs[5]["appmixer"]["chain"]
        a["seq"], b["seq"] = b["seq"], a["seq"]
        assert kinds(walk(docs, signed([head])).findings) == [
            ("out_of_order", 5, "evt-5"), ("out_of_order", 6, "evt-6"),
        ]  # fmt: skip

    def test_three_tamperings_named(self) -> None:
        """Delete one, edit another, insert a forged one: all three named, nothing else."""
        docs, head = chain_of(20)
        docs[9]["user"] = {"email": "someone@else.example"}
        forged = copy.deepcopy(docs[15])
        forged["event"]["id"] = "forged-1"
        del docs[4]
        found = kinds(walk([*docs, forged], signed([head])).findings)
        assert sorted(found) == [("altered", 10, "evt-10"), ("inserted", 16, "forged-1"),
                                 ("missing", 5, "evt-5")]  # fmt: skip

    def test_dead_letter_gap_is_not_missing(self) -> None:
        """An event refused by Elasticsearch, declared as a signed gap, is no finding."""
        docs, head = chain_of(10)
        rejected = docs.pop(4)
        prev, digest = rejected["appmixer"]["chain"]["prev"], rejected["event"]["hash"]
        gap = Gap(stream=STREAM, seq=5, prev=prev, hash=digest, event_id="evt-5", reason="400")
        result = walk(docs, signed([head], [gap]))
        assert result.findings == []
        assert result.intact == 9

    def test_gap_does_not_excuse_an_event_that_is_there(self) -> None:
        """A document at a position declared refused cannot be genuine: inserted."""
        docs, head = chain_of(6)
        gap = Gap(
            stream=STREAM, seq=3, prev=docs[1]["event"]["hash"], hash=docs[2]["event"]["hash"]
        )
        assert kinds(walk(docs, signed([head], [gap])).findings) == [("inserted", 3, "evt-3")]

    def test_replayed_and_restarted_chain_is_intact(self) -> None:
        """A restart resumes from the persisted head: the same values, no finding."""
        first, mid = chain_of(5)
        second, head = chain_of(5, mid)
        replay, _ = chain_of(2, Head(STREAM, 3, first[2]["event"]["hash"], "evt-3"))
        assert replay == first[3:5]
        result = walk(first + second, signed([mid], time="2026-11-25T10:00:00Z"),
                      signed([head], time="2026-11-25T11:00:00Z"))  # fmt: skip
        assert result.findings == []
        assert result.intact == 10

    def test_since_starts_at_the_signed_head(self) -> None:
        """--since: damage before the anchor is out of scope, damage after it is found."""
        docs, mid = chain_of(10)
        later, head = chain_of(10, mid)
        docs[2]["message"] = "edited before"
        later[2]["message"] = "edited after"
        cps = [
            signed([mid], time="2026-11-25T10:00:00Z"),
            signed([head], time="2026-11-25T12:00:00Z"),
        ]
        result = walk(docs + later, *cps, since=datetime(2026, 11, 25, 11, tzinfo=UTC))
        assert kinds(result.findings) == [("altered", 13, "evt-13")]
        assert kinds(walk(docs + later, *cps).findings) == [
            ("altered", 3, "evt-3"),
            ("altered", 13, "evt-13"),
        ]

    def test_bad_and_foreign_checkpoints(self) -> None:
        """A checkpoint with a bad signature is a finding; one under an unknown key is counted."""
        _docs, head = chain_of(3)
        tampered = signed([head]).model_copy(update={"host": "pod-b"})
        foreign = signed([head], key=OTHER_KEY)
        evidence = gather([tampered, foreign], [KEY])
        assert [f.kind for f in evidence.findings] == ["bad_checkpoint"]
        assert (evidence.valid, evidence.unverifiable) == (0, 1)

    def test_without_checkpoints_linkage_still_checked(self) -> None:
        """No key, no checkpoint: a deletion in the middle is still found, all else unsigned."""
        docs, _ = chain_of(6)
        del docs[2]
        result = verify_stream(STREAM, records(docs), Evidence())
        assert kinds(result.findings) == [("missing", 3, "evt-3")]
        assert result.unsigned == 5

    def test_stream_deleted_entirely(self) -> None:
        """A signed stream with no document left is missing from 1 to its head."""
        _, head = chain_of(4)
        (finding,) = walk([], signed([head])).findings
        assert (finding.kind, finding.seq, finding.last) == ("missing", 1, 4)

    def test_absurd_sequence_number_is_cheap(self) -> None:
        """A forged event claiming seq 10**12 does not make the walk count to it."""
        docs, head = chain_of(3)
        forged = copy.deepcopy(docs[2])
        forged["appmixer"]["chain"]["seq"] = 10**12
        forged["event"]["id"] = "far"
        result = walk([*docs, forged], signed([head]))
        assert ("inserted", 10**12, "far") in kinds(result.findings)


class TestPendingHeads:
    """Events a killed run sent, not acknowledged when the next run signed (or stopped)."""

    def final(self, tmp_path: Path, acked: Head, pending: list[Head]) -> Checkpoint:
        stored: list[Checkpoint] = []
        now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
        signer = Signer(KEY, "pod-a", tmp_path, stored.append, interval=1, now=lambda: now)
        signer.checkpoint([(acked, "/l")], [], final=True, pending=pending)
        (checkpoint,) = stored
        return checkpoint

    def walk(self, docs: list[dict[str, Any]], checkpoint: Checkpoint) -> Any:
        evidence = gather([checkpoint], [KEY], now=datetime(2026, 11, 25, 11, 0, tzinfo=UTC))
        return verify_stream(STREAM, records(docs), evidence)

    def heads(self, docs: list[dict[str, Any]], *seqs: int) -> list[Head]:
        return [Head(STREAM, n, docs[n - 1]["event"]["hash"], f"evt-{n}") for n in seqs]

    def test_a_tail_that_leads_to_the_pending_head_is_vouched_for(self, tmp_path: Path) -> None:
        """Acknowledged to 5, sent to 10, stopped: the tail is the agent's, no finding."""
        docs, _ = chain_of(10)
        acked, sent = self.heads(docs, 5, 10)
        result = self.walk(docs, self.final(tmp_path, acked, [sent]))
        assert result.findings == []
        assert (result.intact, result.unsigned) == (10, 0)

    def test_without_it_the_same_tail_is_unsigned(self, tmp_path: Path) -> None:
        """The control: after a final checkpoint that signs only 5, the tail is a finding."""
        docs, _ = chain_of(10)
        (acked,) = self.heads(docs, 5)
        assert kinds(self.walk(docs, self.final(tmp_path, acked, [])).findings) == [
            ("unsigned", 6, "evt-6")
        ]

    def test_a_tail_short_of_the_pending_head_is_counted_not_failed(self, tmp_path: Path) -> None:
        """Sent to 10, only 8 arrived (the rest is sent again by the next run): no finding."""
        docs, _ = chain_of(10)
        acked, sent = self.heads(docs, 5, 10)
        result = self.walk(docs[:8], self.final(tmp_path, acked, [sent]))
        assert result.findings == []
        assert (result.intact, result.unsigned) == (5, 3)

    def test_a_recomputed_tail_does_not_pass_the_pending_head(self, tmp_path: Path) -> None:
        """Events after 5 replaced by others, correctly linked: they miss the signed hash."""
        docs, _ = chain_of(10)
        acked, sent = self.heads(docs, 5, 10)
        forged, head = docs[:5], acked
        for n in range(6, 11):
            doc = event(n, labels={"forged": "yes"})
            head = step(head, doc["event"]["id"], doc)
            doc["event"]["ingested"] = "2026-11-25T10:00:00.000Z"
            forged.append(doc)
        found = kinds(self.walk(forged, self.final(tmp_path, acked, [sent])).findings)
        assert ("altered", 6, "evt-10") in found
        assert ("unsigned", 6, "evt-6") in found

    def test_events_beyond_the_pending_head_are_unsigned(self, tmp_path: Path) -> None:
        """Only what was sent is vouched for: two more after it are a finding."""
        docs, _ = chain_of(12)
        acked, sent = self.heads(docs, 5, 10)
        assert kinds(self.walk(docs, self.final(tmp_path, acked, [sent])).findings) == [
            ("unsigned", 11, "evt-11")
        ]

    def test_a_stream_with_nothing_acknowledged_is_listed_with_its_pending_head(
        self, tmp_path: Path
    ) -> None:
        """Sent, none acknowledged: listed at seq 0 with the pending head, and vouched for."""
        docs, _ = chain_of(4)
        (sent,) = self.heads(docs, 4)
        checkpoint = self.final(tmp_path, Head.genesis("other"), [sent])
        (listed,) = checkpoint.heads
        assert (listed.stream, listed.seq, listed.pending_seq) == (STREAM, 0, 4)
        result = self.walk(docs, checkpoint)
        assert result.findings == []
        assert result.intact == 4

    def test_heads_without_a_pending_one_sign_as_before(self) -> None:
        """A head without pending fields serializes without them: the signatures of
        checkpoints written before they existed still check."""
        assert b"pending" not in signed([Head(STREAM, 3, "c" * 64, "evt-3")]).payload()
        document = signed([Head(STREAM, 3, "c" * 64, "evt-3")]).to_document()
        assert "pending_seq" not in document["appmixer"]["checkpoint"]["heads"][0]


class TestChains:
    def doc(self, n: int) -> tuple[str, dict[str, Any]]:
        return f"evt-{n}", event(n)

    def test_genesis_at_offset_zero_and_steps_in_order(self) -> None:
        """A file read from 0 starts its stream's chain; only event lines advance it."""
        chains = Chains("pod-a", lambda *_: None)
        first = chains.advance("k", "f" * 32, 0, 10, self.doc(1))
        skipped = chains.advance("k", "f" * 32, 10, 20, None)
        second = chains.advance("k", "f" * 32, 20, 30, self.doc(2))
        assert first.head.stream == stream_id("pod-a", "k", 0)
        assert (first.head.seq, first.prev) == (1, GENESIS)
        assert skipped == Place(first.head)
        assert (second.head.seq, second.prev) == (2, first.head.hash)

    def test_files_with_the_same_first_line_are_two_streams(self) -> None:
        """Two files read from 0 that begin with the same banner line: two chains."""
        chains = Chains("pod-a", lambda *_: None)
        one = chains.advance("1:10:" + "f" * 32, "f" * 32, 0, 10, self.doc(1))
        two = chains.advance("1:11:" + "f" * 32, "f" * 32, 0, 10, self.doc(1))
        assert one.head.stream != two.head.stream

    def test_a_copy_read_from_its_start_continues_its_originals_stream(self) -> None:
        """copytruncate while nothing was acknowledged: the copy is read from 0, and its lines
        get the chain values the original's lines got before the stop (a replay is a 409,
        not a second stream holding the same events)."""
        original, copy = "1:10:" + "f" * 32, "1:12:" + "f" * 32
        before = Chains("pod-a", lambda *_: None)
        sent = before.advance(original, "f" * 32, 0, 10, self.doc(1))
        after = Chains("pod-a", lambda *_: None)
        after.copied(copy, original)
        assert after.advance(copy, "f" * 32, 0, 10, self.doc(1)) == sent
        after.copied("1:13:" + "f" * 32, copy)  # a copy of the copy: still the first stream
        again = after.advance("1:13:" + "f" * 32, "f" * 32, 0, 10, self.doc(1))
        assert again.head.stream == sent.head.stream

    def test_the_copy_relation_outlives_a_restart(self) -> None:
        """Killed again before any line of the copy was acknowledged: the next agent learns
        from the registry (the origins book) that the copy continues the original."""

        class Book:
            def __init__(self) -> None:
                self.kept: dict[str, str] = {}

            def origin(self, key: str) -> str | None:
                return self.kept.get(key)

            def set_origin(self, key: str, origin: str) -> None:
                self.kept[key] = origin

        original, copy = "1:10:" + "f" * 32, "1:12:" + "f" * 32
        book = Book()
        sent = Chains("pod-a", lambda *_: None, book).advance(
            original, "f" * 32, 0, 10, self.doc(1)
        )
        Chains("pod-a", lambda *_: None, book).copied(copy, original)
        restarted = Chains("pod-a", lambda *_: None, book)
        assert restarted.advance(copy, "f" * 32, 0, 10, self.doc(1)) == sent

    def test_a_copy_continues_from_the_head_taken_with_its_checkpoint(self) -> None:
        """copytruncate after some lines were acknowledged: the copy is read from the
        original's checkpoint and continues from the head recorded there, though the
        original's own head has moved on (its later lines were acknowledged meanwhile) and
        nothing else could resume at that offset: the lines the original sent after its
        checkpoint get the same values again."""
        original, copy = "1:10:" + "f" * 32, "1:12:" + "f" * 32
        before = Chains("pod-a", lambda *_: None)
        sent = [before.advance(original, "f" * 32, n * 10, n * 10 + 10, self.doc(n))
                for n in range(4)]  # fmt: skip
        after = Chains("pod-a", lambda *_: None)  # nothing is found at offset 20 by lookup
        after.copied(copy, original, 20, chain_record(sent[1].head, 20))
        again = [after.advance(copy, "f" * 32, n * 10, n * 10 + 10, self.doc(n)) for n in (2, 3)]
        assert again == sent[2:]

    def test_a_copy_whose_head_does_not_fit_its_offset_is_not_continued(self) -> None:
        """A head recorded at another offset proves nothing here: a new stream begins."""
        original, copy = "1:10:" + "f" * 32, "1:12:" + "f" * 32
        before = Chains("pod-a", lambda *_: None)
        sent = [before.advance(original, "f" * 32, n * 10, n * 10 + 10, self.doc(n))
                for n in range(3)]  # fmt: skip
        after = Chains("pod-a", lambda *_: None)
        after.copied(copy, original, 20, chain_record(sent[0].head, 10))
        restarted = after.advance(copy, "f" * 32, 20, 30, self.doc(2))
        assert restarted.head.stream != sent[2].head.stream

    def test_restart_resumes_from_persisted_state_identically(self) -> None:
        """Read again from a checkpoint, a line gets the values it had the first time."""
        chains = Chains("pod-a", lambda *_: None)
        entries = [
            chains.advance("k", "f" * 32, n * 10, n * 10 + 10, self.doc(n)) for n in range(4)
        ]
        persisted = {20: entries[1].head}
        again = Chains("pod-a", lambda _key, _content, offset: persisted.get(offset))
        replayed = [again.advance("k2", "f" * 32, n * 10, n * 10 + 10, self.doc(n)) for n in (2, 3)]
        assert replayed == entries[2:]

    def test_unknown_offset_starts_a_new_stream(self) -> None:
        """Without state for a mid-file offset a new stream begins there: nothing is forged."""
        chains = Chains("pod-a", lambda *_: None)
        entry = chains.advance("k", "f" * 32, 500, 510, self.doc(1))
        assert entry.head.stream == stream_id("pod-a", "f" * 32, 500)
        assert entry.head.seq == 1

    def test_registry_record_round_trip(self) -> None:
        """The registry's record gives the head back only at the offset it was taken at."""
        head = Head(STREAM, 4, "a" * 64, "evt-4")
        record = chain_record(head, 400)
        assert head_at(record, 400) == head
        assert head_at(record, 399) is None
        assert head_at({"at": 400}, 400) is None


class TestLedger:
    def test_settle_gives_the_head_at_the_checkpoint_and_forgets(self) -> None:
        """The head handed over is the one after the checkpoint's last line."""
        ledger = Ledger()
        heads = [Head(STREAM, n, f"{n:064x}", f"evt-{n}") for n in (1, 2, 3)]
        for n, head in enumerate(heads):
            ledger.note("k", (n + 1) * 10, Place(head, GENESIS))
        assert ledger.settle("k", 20) == (heads[1], [])
        assert ledger.settle("k", 30) == (heads[2], [])
        assert ledger.settle("k", 10) == (None, [])

    def test_refused_event_becomes_a_gap_with_its_ack(self) -> None:
        """A refused event is a gap, handed over when the checkpoint passes it."""
        ledger = Ledger()
        head = Head(STREAM, 1, "b" * 64, "evt-1")
        ledger.note("k", 10, Place(head, GENESIS))
        ledger.note("k", 20, Place(head))  # a skipped line after it
        ledger.refused("k", 10, "mapper_parsing_exception: bad")
        ledger.refused("k", 20, "skipped lines have no place")
        _head, gaps = ledger.settle("k", 20)
        assert [(g.seq, g.prev, g.hash, g.event_id) for g in gaps] == [
            (1, GENESIS, "b" * 64, "evt-1")
        ]

    def test_no_gaps_without_a_key(self) -> None:
        """Without a signing key, gaps are not kept: no checkpoint would carry them."""
        ledger = Ledger(gaps=False)
        ledger.note("k", 10, Place(Head(STREAM, 1, "b" * 64, "evt-1"), GENESIS))
        ledger.refused("k", 10, "x")
        assert ledger.settle("k", 10)[1] == []


class TestSigner:
    def signer(self, tmp_path: Path, store: Any) -> Signer:
        clock = iter(range(0, 10_000, 100))
        return Signer(KEY, "pod-a", tmp_path, store, interval=60, clock=lambda: next(clock))

    def test_signs_every_head_each_time_in_a_chain(self, tmp_path: Path) -> None:
        """Every head is signed each time, idle or not; gaps carried are returned for
        clearing; each checkpoint names the one before, and a new signer goes on from the
        local copy."""
        stored: list[Checkpoint] = []
        signer = self.signer(tmp_path, stored.append)
        head = Head(STREAM, 3, "c" * 64, "evt-3")
        gap = Gap(stream=STREAM, seq=2, prev="a" * 64, hash="b" * 64)
        assert signer.checkpoint([(head, "/l"), (Head.genesis("other"), None)], [gap, gap]) == [gap]
        assert signer.checkpoint([(head, "/l")], [], final=True) == []
        first, second = stored
        assert first.valid_under(KEY)
        assert second.valid_under(KEY)
        assert [(h.seq, h.path) for h in second.heads] == [(3, "/l")]
        assert (first.seq, first.prev, second.seq, second.prev) == (1, GENESIS, 2, first.digest())
        assert (first.final, second.final, second.epoch) == (False, True, first.epoch)
        assert list(read_local_checkpoints(signer.local)) == stored
        again = self.signer(tmp_path, stored.append)
        again.checkpoint([(head, "/l")], [])
        assert (stored[-1].epoch, stored[-1].seq, stored[-1].prev) == (
            first.epoch,
            3,
            second.digest(),
        )

    def test_store_failure_keeps_it_for_next_time(self, tmp_path: Path) -> None:
        """When the index cannot take it, the local copy has it and the next one repeats it."""

        def refuse(_checkpoint: Checkpoint) -> None:
            raise ConnectionError("down")

        signer = self.signer(tmp_path, refuse)
        head = Head(STREAM, 3, "c" * 64, "evt-3")
        assert signer.checkpoint([(head, None)], []) is None
        stored: list[Checkpoint] = []
        signer._store = stored.append
        assert signer.checkpoint([(head, None)], []) == []
        assert len(list(read_local_checkpoints(signer.local))) == 2
        assert [c.seq for c in stored] == [1, 2]  # the one the index missed, first

    def test_resumes_from_the_end_past_a_torn_line(self, tmp_path: Path) -> None:
        """A crash mid-append leaves a torn last line: the next agent goes on from the last
        whole checkpoint, read from the end of the copy."""
        stored: list[Checkpoint] = []
        signer = self.signer(tmp_path, stored.append)
        head = Head(STREAM, 3, "c" * 64, "evt-3")
        for _ in range(3):
            signer.checkpoint([(head, None)], [])
        with signer.local.open("ab") as out:
            out.write(b'{"@timestamp": "2026-11-25T10:00:00Z", "appmix')
        again = self.signer(tmp_path, stored.append)
        assert (again.epoch, again.seq, again.prev) == (stored[-1].epoch, 3, stored[-1].digest())
        again.checkpoint([(head, None)], [])
        good, bad = read_local_copy(signer.local)
        assert [c.seq for _where, c in good] == [1, 2, 3, 4]
        assert [where.rsplit(":", 1)[1] for where, _why in bad] == ["4"]  # one BAD_CHECKPOINT

    def test_local_file_errors_name_the_line(self, tmp_path: Path) -> None:
        """A damaged local copy is one error naming the file and line."""
        path = tmp_path / "c.ndjson"
        path.write_text('{"appmixer": {"checkpoint": {}}}\nnot json\n')
        with pytest.raises(ValueError, match="line 1"):
            list(read_local_checkpoints(path))


class TestSummaryLine:
    """verify's last line counts in words that agree with their numbers."""

    def test_one_of_each_is_singular(self) -> None:
        report = Report(streams=[StreamResult("s", intact=1)], checkpoints_valid=1)
        assert summary_line("logs-x", report) == (
            "logs-x: intact; 1 stream, 1 event verified, 0 newer than the last signed "
            "checkpoint; 1 checkpoint valid"
        )

    def test_several_are_plural(self) -> None:
        report = Report(
            streams=[StreamResult("a", intact=2, unsigned=1), StreamResult("b", intact=3)],
            checkpoints_valid=4,
            checkpoints_unverifiable=2,
        )
        assert summary_line("logs-x", report) == (
            "logs-x: intact; 2 streams, 5 events verified, 1 newer than the last signed "
            "checkpoint; 4 checkpoints valid, 2 under keys not given"
        )


class TestWindowedWalk:
    """A long tampered stream is walked in memory one window at a time (between signed
    heads), with the same findings as one walk over all of it."""

    def findings(self, monkeypatch: pytest.MonkeyPatch, window: int) -> list[tuple[Any, ...]]:
        import chain.verify

        monkeypatch.setattr(chain.verify, "WINDOW", window)
        docs, _ = chain_of(60)
        heads = [
            Head(STREAM, n, docs[n - 1]["event"]["hash"], f"evt-{n}")
            for n in (10, 20, 30, 40, 50, 60)
        ]
        cps = [signed([h], time=f"2026-11-25T10:{i:02d}:00.000Z") for i, h in enumerate(heads)]
        docs[4]["message"] = "edited"  # altered at 5
        del docs[14]  # missing 15
        forged = copy.deepcopy(docs[40])
        forged["event"]["id"] = "forged"
        forged["message"] = "forged"
        result = verify_stream(
            STREAM,
            sorted(records([*docs, forged]), key=lambda r: (r.seq, r.doc_id)),
            gather(cps, [KEY]),
        )
        assert result.intact == 58
        return sorted((f.kind, f.seq, f.event_id) for f in result.findings)

    def test_same_findings_with_small_windows(self, monkeypatch: pytest.MonkeyPatch) -> None:
        whole = self.findings(monkeypatch, 10_000)
        assert whole == [
            ("altered", 5, "evt-5"),
            ("inserted", 42, "forged"),
            ("missing", 15, "evt-15"),
        ]
        assert self.findings(monkeypatch, 5) == whole
