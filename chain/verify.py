"""Replaying the chains: which stored events are missing, altered, inserted or out of order.

Pure: it takes the stored events of one stream (as :class:`Record`, digests already taken)
and what the valid signed checkpoints say about that stream (:class:`Evidence`), and returns
findings. Reading them from Elasticsearch is ``indexer.chain``'s job.

The walk follows the *links*, not the stored sequence numbers: from the anchor (the start of
the stream, or a signed head for ``--since``) it looks for the event whose ``prev`` is the
current hash and whose link, recomputed from its content *at the next position*, is its
``event.hash``. Then:

- found, with that sequence number: intact; with another one: **out of order** (its position
  field was changed; its links say where it belongs);
- found by ``prev`` but its link does not recompute: **altered** (content edited);
- nothing links, but the event stored at that position is intact in itself: the one *before*
  it was re-hashed after an edit (**altered**), or, when that one is a signed head or gap,
  this one was (**altered**);
- nothing at all: **missing**, up to the next intact event, whose ``prev_id`` names the last
  missing one; a missing tail is found against the signed head.

A declared gap (an event Elasticsearch refused, signed in a checkpoint) fills its position.
Events left over at the end link nowhere: **inserted**. Finally the walk must pass through
every signed head with the signed hash, otherwise the chain was recomputed after an edit.
Events after the last signed head are counted as *unsigned*: consistent, but not yet covered
by a signature (the agent signs every ``CHAIN_CHECKPOINT_INTERVAL`` and when it stops).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from chain.checkpoint import ChainKey, Checkpoint, Gap, SignedHead
from chain.link import FIELD, Head, content_digest, link

Kind = Literal["missing", "altered", "inserted", "out_of_order", "bad_checkpoint"]


@dataclass(frozen=True, slots=True)
class Record:
    """What the walk needs of one stored event; the content digest is recomputed on load."""

    doc_id: str
    event_id: str | None
    stream: str | None
    seq: int | None
    prev: str | None
    prev_id: str | None
    hash: str | None
    content: str
    path: str | None = None

    @classmethod
    def from_source(cls, doc_id: str, source: dict[str, Any]) -> Record:
        event = source.get("event")
        event = event if isinstance(event, dict) else {}
        appmixer = source.get("appmixer")
        chain = appmixer.get(FIELD) if isinstance(appmixer, dict) else None
        chain = chain if isinstance(chain, dict) else {}
        log = source.get("log")
        file = log.get("file") if isinstance(log, dict) else None
        seq = chain.get("seq")
        return cls(
            doc_id=doc_id,
            event_id=_text(event.get("id")),
            stream=_text(chain.get("stream")),
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            prev=_text(chain.get("prev")),
            prev_id=_text(chain.get("prev_id")),
            hash=_text(event.get("hash")),
            content=content_digest(source),
            path=_text(file.get("path")) if isinstance(file, dict) else None,
        )

    @property
    def chained(self) -> bool:
        return self.stream is not None

    def link_at(self, seq: int) -> str | None:
        """The link this event would have at ``seq`` after its stored ``prev``."""
        if self.stream is None or self.prev is None:
            return None
        return link(self.stream, seq, self.prev, self.prev_id, self.content)

    def intact_at(self, seq: int | None) -> bool:
        return seq is not None and self.hash is not None and self.link_at(seq) == self.hash


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    detail: str
    stream: str | None = None
    seq: int | None = None
    last: int | None = None  # for a run of missing events
    event_id: str | None = None
    doc_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    def line(self) -> str:
        where = []
        if self.stream is not None:
            where.append(f"stream {self.stream}")
        if self.seq is not None:
            span = f"{self.seq}..{self.last}" if self.last not in (None, self.seq) else self.seq
            where.append(f"seq {span}")
        if self.event_id is not None:
            where.append(f"event {self.event_id}")
        if self.doc_id is not None and self.doc_id != self.event_id:
            where.append(f"_id {self.doc_id}")
        return f"{self.kind.upper():<13} {' '.join(where)}: {self.detail}"


@dataclass
class StreamResult:
    stream: str
    intact: int = 0
    unsigned: int = 0  # consistent events after the last signed head
    signed_seq: int = 0
    head_seq: int = 0
    path: str | None = None
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Evidence:
    """What the valid checkpoints say, per stream: where to start, signed heads, gaps."""

    anchors: dict[str, Head] = field(default_factory=dict)
    heads: dict[str, list[SignedHead]] = field(default_factory=lambda: defaultdict(list))
    gaps: dict[str, dict[int, Gap]] = field(default_factory=lambda: defaultdict(dict))
    valid: int = 0
    unverifiable: int = 0  # signed under a key that was not given
    findings: list[Finding] = field(default_factory=list)

    def anchor(self, stream: str) -> Head:
        return self.anchors.get(stream) or Head.genesis(stream)

    def streams(self) -> set[str]:
        return set(self.heads) | set(self.gaps)


def gather(
    checkpoints: Iterable[Checkpoint], keys: Sequence[ChainKey], since: datetime | None = None
) -> Evidence:
    """Check every checkpoint's signature and sort what the valid ones say.

    With ``since``, each stream starts at its last head signed at or before it; heads and gaps
    before that are not needed. A checkpoint with a wrong signature is a finding; one under a
    key not given is only counted (it can be neither trusted nor refuted).
    """
    by_id = {key.key_id: key for key in keys}
    evidence = Evidence()
    for checkpoint in sorted(checkpoints, key=lambda c: _when(c.time)):
        key = by_id.get(checkpoint.key_id)
        if key is None:
            evidence.unverifiable += 1
            continue
        if not checkpoint.valid_under(key):
            evidence.findings.append(
                Finding("bad_checkpoint", f"signature does not match (host {checkpoint.host}, "
                        f"time {checkpoint.time}): forged or edited", doc_id=checkpoint.doc_id)
            )  # fmt: skip
            continue
        evidence.valid += 1
        if since is not None and _when(checkpoint.time) <= since:
            for head in checkpoint.heads:
                known = evidence.anchors.get(head.stream)
                if known is None or head.seq > known.seq:
                    evidence.anchors[head.stream] = Head(
                        head.stream, head.seq, head.hash, head.event_id
                    )
            continue
        for head in checkpoint.heads:
            evidence.heads[head.stream].append(head)
        for gap in checkpoint.gaps:
            evidence.gaps[gap.stream][gap.seq] = gap
    return evidence


def verify_stream(stream: str, records: Sequence[Record], evidence: Evidence) -> StreamResult:
    """Walk one stream's chain; see the module docstring."""
    return _Walk(stream, records, evidence).run()


class _Walk:
    def __init__(self, stream: str, records: Sequence[Record], evidence: Evidence) -> None:
        self.anchor = evidence.anchor(stream)
        self.recs = [r for r in records if r.seq is None or r.seq > self.anchor.seq]
        self.gaps = {s: g for s, g in evidence.gaps.get(stream, {}).items() if s > self.anchor.seq}
        self.signed = {h.seq: h for h in evidence.heads.get(stream, []) if h.seq > self.anchor.seq}
        self.result = StreamResult(stream)
        self.by_prev: dict[str, list[int]] = defaultdict(list)
        self.by_seq: dict[int, list[int]] = defaultdict(list)
        for i, rec in enumerate(self.recs):
            if rec.prev is not None:
                self.by_prev[rec.prev].append(i)
            if rec.seq is not None:
                self.by_seq[rec.seq].append(i)
        # Where the walk can pick up after missing events: by position, intact ones first.
        self.ahead = sorted(
            (rec.seq, not rec.intact_at(rec.seq), rec.doc_id, i)
            for i, rec in enumerate(self.recs)
            if rec.seq is not None and rec.prev is not None
        )
        self.placed: dict[int, int] = {}  # record index -> position
        self.flagged: set[int] = set()
        self.at: dict[int, int | None] = {self.anchor.seq: None}  # position -> record index
        self.hashes: dict[int, str] = {self.anchor.seq: self.anchor.hash}

    def run(self) -> StreamResult:
        last_signed = max(self.signed, default=self.anchor.seq)
        stored = [r.seq for r in self.recs if r.seq is not None]
        top = max([*stored, last_signed, *self.gaps, self.anchor.seq])
        pos, cur = self.anchor.seq, self.anchor.hash
        while pos < top:
            n = pos + 1
            gap = self.gaps.get(n)
            if gap is not None:
                pos, cur = n, gap.hash
                self.at[n], self.hashes[n] = None, cur
                continue
            chosen = self._next(n, cur)
            if chosen is None:
                jump = self._missing(n, last_signed)
                if jump is None:
                    break
                pos, cur = jump
                self.at[pos], self.hashes[pos] = None, cur
                continue
            rec = self.recs[chosen]
            self.placed[chosen] = n
            pos, cur = n, rec.hash or ""
            self.at[n], self.hashes[n] = chosen, cur
        self._check_signed()
        for i, rec in enumerate(self.recs):
            if i not in self.placed:
                taken = rec.seq is not None and rec.seq in self.at
                why = f"a second event at seq {rec.seq}" if taken else "an event"
                self._find("inserted", f"{why} that links nowhere in the chain", i, rec.seq)
        result = self.result
        result.signed_seq = last_signed
        result.head_seq = pos
        result.path = next((r.path for r in self.recs if r.path), None)
        for i, position in self.placed.items():
            if i in self.flagged:
                continue
            if position > last_signed:
                result.unsigned += 1
            else:
                result.intact += 1
        result.findings.sort(key=lambda f: (f.seq if f.seq is not None else -1, f.kind))
        return result

    def _next(self, n: int, cur: str) -> int | None:
        """The record at position ``n`` (placing findings on the way), or None: missing."""
        free = [i for i in self.by_prev.get(cur, ()) if i not in self.placed]
        exact = [i for i in free if self.recs[i].intact_at(n)]
        if exact:
            i = self._choose(exact, n)
            rec = self.recs[i]
            if rec.seq != n:
                self._find("out_of_order", f"stored as seq {rec.seq}, its links place it "
                           f"at seq {n}", i, n)  # fmt: skip
            return i
        if free:
            i = self._choose(free, n)
            self._find("altered", "its content does not match its hash", i, n)
            return i
        at_n = [i for i in self.by_seq.get(n, ()) if i not in self.placed]
        intact = [i for i in at_n if self.recs[i].intact_at(n)]
        if intact:
            i = self._choose(intact, n)
            before = self.at.get(n - 1)
            if before is not None:
                if before not in self.flagged:
                    self._find("altered", f"its hash was recomputed: the event at seq {n} names "
                               "another one", before, n - 1)  # fmt: skip
            else:
                self._find("altered", "does not link to the signed head or gap before it",
                           i, n)  # fmt: skip
            return i
        if at_n:
            i = self._choose(at_n, n)
            self._find("altered", "its chain fields were changed", i, n)
            return i
        return None

    def _missing(self, n: int, last_signed: int) -> tuple[int, str] | None:
        """Report the run of missing events from ``n``; where the walk resumes, if anywhere."""
        start = bisect.bisect_left(self.ahead, (n + 1,))
        for seq, damaged, _doc_id, i in self.ahead[start:]:
            rec = self.recs[i]
            if i in self.placed or rec.prev is None or (damaged and seq > n + 1):
                continue  # a damaged event is trusted to name its place only right after n
            named = f"; the last of them is event {rec.prev_id}" if seq - n > 1 else ""
            self.result.findings.append(
                Finding("missing", f"not in the index (named by its successor){named}",
                        self.result.stream, n, seq - 1,
                        rec.prev_id if seq - n == 1 else None)
            )  # fmt: skip
            return seq - 1, rec.prev
        if last_signed >= n:
            head = self.signed.get(last_signed)
            self.result.findings.append(
                Finding("missing", "not in the index, though covered by a signed checkpoint",
                        self.result.stream, n, last_signed,
                        head.event_id if head is not None and last_signed == n else None)
            )  # fmt: skip
        return None

    def _choose(self, candidates: list[int], n: int) -> int:
        """The likeliest genuine one: it has a successor (or the signed hash), it sits at
        ``n``; then by document id, so the answer never depends on search order."""
        signed = self.signed.get(n)

        def rank(i: int) -> tuple[bool, bool, str]:
            rec = self.recs[i]
            followed = any(j not in self.placed for j in self.by_prev.get(rec.hash or "", ()))
            confirmed = signed is not None and signed.hash == rec.hash
            return (not (followed or confirmed), rec.seq != n, rec.doc_id)

        return min(candidates, key=rank)

    def _check_signed(self) -> None:
        previous = self.anchor.seq
        for seq in sorted(self.signed):
            head = self.signed[seq]
            walked = self.hashes.get(seq)
            if walked is not None and walked != head.hash:
                self.result.findings.append(
                    Finding("altered", "the chain was recomputed: it does not pass through the "
                            f"head signed at seq {seq}", self.result.stream, previous + 1, seq)
                )  # fmt: skip
            previous = seq

    def _find(self, kind: Kind, detail: str, i: int, seq: int | None) -> None:
        rec = self.recs[i]
        if kind != "inserted":
            self.flagged.add(i)
        self.result.findings.append(
            Finding(kind, detail, self.result.stream, seq, None, rec.event_id, rec.doc_id)
        )


def unchained(record: Record) -> Finding:
    """An event without chain fields in a chained target: not written by the agent."""
    return Finding("inserted", "no chain fields: not written by the agent",
                   None, None, None, record.event_id, record.doc_id)  # fmt: skip


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Report:
    """The outcome of one ``verify``: per stream, plus what concerns no single stream."""

    streams: list[StreamResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # unchained events, bad checkpoints
    checkpoints_valid: int = 0
    checkpoints_unverifiable: int = 0

    @property
    def all_findings(self) -> list[Finding]:
        return [*self.findings, *(f for s in self.streams for f in s.findings)]

    @property
    def intact(self) -> bool:
        return not self.all_findings

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for finding in self.all_findings:
            found[finding.kind] += 1
        return dict(sorted(found.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "events_intact": sum(s.intact for s in self.streams),
            "events_unsigned": sum(s.unsigned for s in self.streams),
            "streams": len(self.streams),
            "checkpoints": {
                "valid": self.checkpoints_valid,
                "unverifiable": self.checkpoints_unverifiable,
            },
            "counts": self.counts(),
            "findings": [finding.as_dict() for finding in self.all_findings],
        }


def assemble(
    streams: Iterable[tuple[str, list[Record]]], unchained_records: Iterable[Record],
    evidence: Evidence,
) -> Report:  # fmt: skip
    """Verify every stream (those with records, and signed ones whose records are all gone)."""
    report = Report(
        findings=list(evidence.findings),
        checkpoints_valid=evidence.valid,
        checkpoints_unverifiable=evidence.unverifiable,
    )
    seen: set[str] = set()
    for stream, recs in streams:
        seen.add(stream)
        report.streams.append(verify_stream(stream, recs, evidence))
    for stream in sorted(evidence.streams() - seen):
        result = verify_stream(stream, [], evidence)
        if result.findings:
            report.streams.append(result)
    report.findings.extend(unchained(record) for record in unchained_records)
    return report
