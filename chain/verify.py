"""Replaying the chains: which stored events are missing, altered, inserted or out of order.

Pure: it takes the stored events of one stream (as :class:`Record`, digests already taken)
and what the valid signed checkpoints say about that stream (:class:`Evidence`), and returns
findings. Reading them from Elasticsearch is ``indexer.chain_index``'s job.

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
Where two events link correctly onto the same position, the one whose branch passes through
the signed heads is placed, whatever their ids or order; the other branch is one **fork**.
Events left over at the end link nowhere: **inserted**. Finally the walk must pass through
every signed head with the signed hash, otherwise the chain was recomputed after an edit.

Events after the last signed head are consistent but not vouched for: *newer* while their
agent is live and they are recent (:meth:`Evidence.cutoff`: two checkpoint intervals), else
**unsigned**. Checkpoints themselves form a chain per agent (:func:`gather`).

Memory: untouched stretches stream past (:class:`_Fast`); from an anomaly on, the walk holds
the records up to the next signed head at least :data:`WINDOW` positions ahead.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from chain.checkpoint import ChainKey, Checkpoint, Gap, SignedHead, parse_time
from chain.link import FIELD, GENESIS, Head, content_digest, link

Kind = Literal[
    "missing",
    "altered",
    "inserted",
    "out_of_order",
    "fork",
    "unsigned",
    "bad_checkpoint",
    "missing_checkpoint",
]


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
    host: str | None = None
    ingested: str | None = None

    @classmethod
    def from_source(cls, doc_id: str, source: dict[str, Any]) -> Record:
        event = source.get("event")
        event = event if isinstance(event, dict) else {}
        appmixer = source.get("appmixer")
        chain = appmixer.get(FIELD) if isinstance(appmixer, dict) else None
        chain = chain if isinstance(chain, dict) else {}
        log = source.get("log")
        file = log.get("file") if isinstance(log, dict) else None
        host = source.get("host")
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
            host=_text(host.get("name")) if isinstance(host, dict) else None,
            ingested=_text(event.get("ingested")),
        )

    @property
    def id_mismatch(self) -> bool:
        """The document's ``_id`` is not its ``event.id`` (a swapped or copied ``_source``)."""
        return self.event_id is not None and self.doc_id != self.event_id

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
    unsigned: int = 0  # consistent events after the last signed head, inside the window
    signed_seq: int = 0
    head_seq: int = 0
    path: str | None = None
    host: str | None = None
    findings: list[Finding] = field(default_factory=list)


CLOSED: Final = "closed"
# After an anomaly a stream is walked in memory up to the next signed head at least this many
# positions ahead (about 1 KB a position), then streamed again from that head.
WINDOW = 50_000


@dataclass
class Agent:
    """One agent's checkpoint chain (host and epoch), as far as the valid checkpoints show."""

    host: str
    epoch: str
    latest: Checkpoint
    doc_ids: dict[int, str] = field(default_factory=dict)


@dataclass
class Evidence:
    """What the valid checkpoints say, per stream: where to start, signed heads, gaps; and
    per agent, its last checkpoint (which bounds what may still be unsigned)."""

    anchors: dict[str, Head] = field(default_factory=dict)
    heads: dict[str, dict[int, SignedHead]] = field(default_factory=lambda: defaultdict(dict))
    gaps: dict[str, dict[int, Gap]] = field(default_factory=lambda: defaultdict(dict))
    # stream -> (seq, hash): the furthest head signed as sent, not yet acknowledged
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)  # stream -> host of its checkpoints
    agents: dict[str, Agent] = field(default_factory=dict)  # host -> its latest chain
    legacy_hosts: set[str] = field(default_factory=set)  # format 1: no window information
    unverifiable_hosts: dict[str, datetime] = field(default_factory=dict)  # host -> latest
    unverifiable_seqs: set[tuple[str, str, int]] = field(default_factory=set)
    valid: int = 0
    unverifiable: int = 0  # signed under a key that was not given
    unsigned_checkpoints: int = 0  # from agents without a key: they only declare gaps
    findings: list[Finding] = field(default_factory=list)
    now: datetime | None = None

    def anchor(self, stream: str) -> Head:
        return self.anchors.get(stream) or Head.genesis(stream)

    def signed(self, stream: str) -> Iterable[SignedHead]:
        """The heads signed for ``stream`` (after the ``--since`` anchor), one per seq."""
        return self.heads.get(stream, {}).values()

    def streams(self) -> set[str]:
        return set(self.heads) | set(self.gaps) | set(self.anchors)

    def cutoff(self, host: str | None) -> datetime | str | None:
        """Which events of ``host`` may still be unsigned without a finding.

        None: all of them (nothing was signed, or the agent's checkpoints say nothing about
        its window); :data:`CLOSED`: none (its last checkpoint is final or older than two
        intervals, or the host has no signed checkpoint while others do); a time: those
        ingested at or after it (two intervals before the agent's last checkpoint).
        """
        if self.valid == 0:
            return None
        agent = self.agents.get(host) if host is not None else None
        foreign = self.unverifiable_hosts.get(host) if host is not None else None
        if agent is None:
            if host in self.legacy_hosts or foreign is not None:
                return None
            return CLOSED
        latest = agent.latest
        if foreign is not None and foreign > latest.when:
            return None  # it signed later under a key not given: that part cannot be judged
        window = timedelta(seconds=2 * latest.interval)
        if latest.final or (self.now is not None and self.now - latest.when > window):
            return CLOSED
        return latest.when - window


Stored = tuple[str, Checkpoint]  # a checkpoint and its document _id (or "local:<n>")


def gather(
    checkpoints: Iterable[Checkpoint | Stored],
    keys: Sequence[ChainKey],
    since: datetime | None = None,
    now: datetime | None = None,
) -> Evidence:
    """Check every checkpoint's signature and chain, and sort what the valid ones say.

    Each document is judged on its own (identified by its ``_id``): a copy of a genuine
    checkpoint with edited heads is a finding and does not hide the genuine one. Valid ones
    with the same signature are one checkpoint (the index and the local copy). Per agent the
    checkpoints must follow each other (seq 1, 2, 3, ... each naming the one before): a
    missing or substituted one is a finding. With ``since``, each stream starts at its last
    head signed at or before it. A checkpoint under a key not given is only counted.
    """
    by_id = {key.key_id: key for key in keys}
    evidence = Evidence(now=now)
    valid: dict[str, Stored] = {}
    for number, item in enumerate(checkpoints):
        doc_id, checkpoint = item if isinstance(item, tuple) else (f"#{number}", item)
        if not checkpoint.signed_by_agent:
            evidence.unsigned_checkpoints += 1
            if not keys:  # nothing is trusted anyway: take the declared gaps as they are
                for gap in checkpoint.gaps:
                    evidence.gaps[gap.stream][gap.seq] = gap
            continue
        key = by_id.get(checkpoint.key_id)
        if key is None:
            evidence.unverifiable += 1
            known = evidence.unverifiable_hosts.get(checkpoint.host)
            if known is None or checkpoint.when > known:
                evidence.unverifiable_hosts[checkpoint.host] = checkpoint.when
            evidence.unverifiable_seqs.add((checkpoint.host, checkpoint.epoch, checkpoint.seq))
            continue
        if not checkpoint.valid_under(key):
            evidence.findings.append(
                Finding("bad_checkpoint", f"signature does not match (host {checkpoint.host}, "
                        f"time {checkpoint.time}): forged or edited", doc_id=doc_id)
            )  # fmt: skip
            continue
        valid.setdefault(checkpoint.signature, (doc_id, checkpoint))
    ordered = sorted(valid.values(), key=lambda item: (item[1].when, item[1].seq))
    evidence.valid = len(ordered)
    _chain_checkpoints(ordered, evidence)
    _sort_heads(ordered, evidence, since)
    return evidence


def _sort_heads(ordered: list[Stored], evidence: Evidence, since: datetime | None) -> None:
    """Signed heads and gaps per stream; with ``since``, the anchors before it."""
    for _doc_id, checkpoint in ordered:
        for head in checkpoint.heads:
            evidence.hosts.setdefault(head.stream, checkpoint.host)
        if since is not None and checkpoint.when <= since:
            for head in checkpoint.heads:
                known = evidence.anchors.get(head.stream)
                if known is None or head.seq > known.seq:
                    evidence.anchors[head.stream] = Head(
                        head.stream, head.seq, head.hash, head.event_id
                    )
            continue
        for head in checkpoint.heads:
            if head.seq > 0:
                evidence.heads[head.stream][head.seq] = head  # an idle head: listed once
            if head.pending_seq is not None and head.pending_hash is not None:
                sent = evidence.pending.get(head.stream)
                if sent is None or head.pending_seq > sent[0]:
                    evidence.pending[head.stream] = (head.pending_seq, head.pending_hash)
        for gap in checkpoint.gaps:
            evidence.gaps[gap.stream][gap.seq] = gap


def _chain_checkpoints(ordered: list[Stored], evidence: Evidence) -> None:
    """Per agent and epoch: consecutive sequence numbers, each naming the one before."""
    chains: dict[tuple[str, str], dict[int, Stored]] = defaultdict(dict)
    for doc_id, checkpoint in ordered:
        if not checkpoint.chained:
            evidence.legacy_hosts.add(checkpoint.host)
            continue
        taken = chains[(checkpoint.host, checkpoint.epoch)]
        if checkpoint.seq in taken:
            other = taken[checkpoint.seq][0]
            evidence.findings.append(
                Finding("bad_checkpoint", f"a second signed checkpoint {checkpoint.seq} of host "
                        f"{checkpoint.host} (the other is _id {other}): the key signed two "
                        "histories", doc_id=doc_id)
            )  # fmt: skip
            continue
        taken[checkpoint.seq] = (doc_id, checkpoint)
    for (host, epoch), taken in chains.items():
        expected, prev = 1, GENESIS
        for seq in sorted(taken):
            doc_id, checkpoint = taken[seq]
            while expected < seq and (host, epoch, expected) in evidence.unverifiable_seqs:
                expected, prev = expected + 1, ""  # there, under a key not given
            if seq > expected:
                span = f"{expected}" if seq - expected == 1 else f"{expected}..{seq - 1}"
                evidence.findings.append(
                    Finding("missing_checkpoint", f"checkpoint {span} of host {host} (epoch "
                            f"{epoch}) is not there: deleted; the next one is _id {doc_id}",
                            seq=expected, last=seq - 1)
                )  # fmt: skip
            elif prev and checkpoint.prev != prev:
                evidence.findings.append(
                    Finding("bad_checkpoint", f"checkpoint {seq} of host {host} does not follow "
                            f"checkpoint {seq - 1}: substituted or reordered", doc_id=doc_id)
                )  # fmt: skip
            expected, prev = seq + 1, checkpoint.digest()
        latest = taken[max(taken)][1]
        agent = evidence.agents.get(host)
        if agent is None or latest.when > agent.latest.when:
            evidence.agents[host] = Agent(host, epoch, latest)


def verify_stream(stream: str, records: Iterable[Record], evidence: Evidence) -> StreamResult:
    """Walk one stream's chain, records in stored sequence order; see the module docstring.

    Untouched stretches are checked as they stream past, holding nothing; from the first
    anomaly on, the rest of the stream is walked by its links in memory.
    """
    return _Fast(stream, evidence).run(iter(records))


class _Fast:
    """The streaming pass: places events while everything is as the agent wrote it.

    The last placed event is *held* (not yet counted) so that, when the next one is
    anomalous, the in-memory walk can start just before it: an edit whose link was
    recomputed shows only at its successor, and must be named on the edited event.
    """

    def __init__(self, stream: str, evidence: Evidence) -> None:
        self.stream = stream
        self.evidence = evidence
        self.anchor = evidence.anchor(stream)
        self.signed = {h.seq: h for h in evidence.signed(stream) if h.seq > self.anchor.seq}
        self.gaps = {s: g for s, g in evidence.gaps.get(stream, {}).items() if s > self.anchor.seq}
        self.last_signed = max(self.signed, default=self.anchor.seq)
        self.tail = _Tail(evidence, stream, self.last_signed)
        self.state: tuple[int, str, str | None] = (
            self.anchor.seq, self.anchor.hash, self.anchor.event_id
        )  # fmt: skip
        self.held: tuple[int, Record, tuple[int, str, str | None]] | None = None
        self.intact = 0
        self.path: str | None = None

    def _count_held(self) -> None:
        if self.held is None:
            return
        n, rec, _before = self.held
        self.held = None
        self.path = self.path or rec.path
        if n <= self.last_signed:
            self.intact += 1
        else:
            self.tail.add(n, rec)

    def _fill_gaps(self, until: int | None) -> None:
        """Step over declared gaps before the next stored position ``until``."""
        while self.state[0] + 1 in self.gaps and until != self.state[0] + 1:
            self._count_held()
            gap = self.gaps[self.state[0] + 1]
            self.state = (self.state[0] + 1, gap.hash, gap.event_id)

    def _fits(self, rec: Record, n: int) -> bool:
        _pos, cur, cur_id = self.state
        head = self.signed.get(n)
        return (
            rec.seq == n
            and n not in self.gaps
            and rec.prev == cur
            and rec.prev_id == cur_id
            and not rec.id_mismatch
            and rec.intact_at(n)
            and (head is None or head.hash == rec.hash)
        )

    def run(self, it: Iterator[Record]) -> StreamResult:
        findings: list[Finding] = []
        while True:
            pending = self._stream(it)
            if not pending and self.state[0] >= self.last_signed:
                self._count_held()
                result = StreamResult(self.stream, intact=self.intact, head_seq=self.state[0])
                break
            if self.held is not None:
                _n, rec, before = self.held
                self.held, self.state = None, before
                pending.insert(0, rec)
            limit = self._limit()
            if limit is None:  # the rest of the stream, walked by its links in memory
                rest = [*pending, *(r for r in it if r.seq is None or r.seq > self.anchor.seq)]
                result = self._walk(rest, None)
                result.intact += self.intact
                break
            # A long stream: walk up to the next signed head at least WINDOW ahead, then go
            # on from that head (its signed hash is a trusted start), streaming again.
            window = [r for r in pending if r.seq is not None and r.seq <= limit]
            later = [r for r in pending if r.seq is None or r.seq > limit]
            beyond = None
            for rec in it:
                if rec.seq is None or rec.seq > limit:
                    beyond = rec
                    break
                if rec.seq > self.anchor.seq:
                    window.append(rec)
            part = self._walk(window, limit)
            self.intact += part.intact
            findings.extend(part.findings)
            head = self.signed[limit]
            self.state = (limit, head.hash, head.event_id)
            if beyond is not None:
                later.append(beyond)
            it = itertools.chain(later, it)
        result.findings[:0] = findings
        result.signed_seq = self.last_signed
        result.path = result.path or self.path
        return _finish(result, self.tail)

    def _stream(self, it: Iterator[Record]) -> list[Record]:
        """Place events while they fit; the records where they stop fitting, or none."""
        rec = next(it, None)
        while rec is not None:
            if rec.seq is not None and rec.seq <= self.anchor.seq:
                rec = next(it, None)
                continue  # before the --since anchor: out of scope
            self.tail.host_of(rec)
            self._fill_gaps(rec.seq)
            n = self.state[0] + 1
            if not self._fits(rec, n):
                return [rec]
            nxt = next(it, None)
            if nxt is not None and nxt.seq == n:
                return [rec, nxt]
            self._count_held()
            self.held = (n, rec, self.state)
            self.state = (n, rec.hash or "", rec.event_id)
            rec = nxt
        self._fill_gaps(None)
        return []

    def _limit(self) -> int | None:
        """The signed head that ends the next in-memory window, or None: to the end."""
        far = self.state[0] + WINDOW
        return min((seq for seq in self.signed if seq > far), default=None)

    def _walk(self, records: list[Record], limit: int | None) -> StreamResult:
        pos, cur, cur_id = self.state
        start = Head(self.stream, pos, cur, cur_id)
        for rec in records:
            self.tail.host_of(rec)
        walked = _Walk(self.stream, records, self.evidence, start, self.tail, limit=limit).run()
        self.path = self.path or walked.path
        return walked


def _finish(result: StreamResult, tail: _Tail) -> StreamResult:
    result.host = tail.host
    tail.close()
    result.intact += tail.vouched
    result.unsigned = tail.within
    result.findings.extend(tail.findings())
    result.findings.sort(key=lambda f: (f.seq if f.seq is not None else -1, f.kind))
    return result


class _Tail:
    """The consistent events after a stream's last signed head: vouched for by a signed
    pending head they lead to (sent, not yet acknowledged, when the checkpoint was taken),
    inside the window of a live agent (counted), or neither (one ``unsigned`` finding).

    Events up to the pending head are held until the walk reaches it: with its signed hash
    they are vouched for; with another, the chain was recomputed (``altered``); when the
    stream ends before it, they are what a killed run sent and the agent has not yet read
    again (counted as unsigned, no finding: they are the ones it will send again).
    """

    def __init__(self, evidence: Evidence, stream: str, last_signed: int) -> None:
        self.evidence = evidence
        self.stream = stream
        self.last_signed = last_signed
        self.host = evidence.hosts.get(stream)
        self.pending = evidence.pending.get(stream)
        self._cutoff: datetime | str | None = None
        self._decided = False
        self.within = 0
        self.vouched = 0
        self.held: list[tuple[int, Record]] = []
        self.outside: list[tuple[int, str | None]] = []
        self.recomputed: Finding | None = None

    def host_of(self, rec: Record) -> None:
        if self.host is None and rec.host is not None:
            self.host = rec.host

    def add(self, seq: int, rec: Record) -> None:
        pending = self.pending
        if pending is not None and seq <= pending[0] and self.recomputed is None:
            self.held.append((seq, rec))
            if seq == pending[0]:
                if rec.hash == pending[1]:
                    self.vouched += len(self.held)
                else:
                    self.recomputed = Finding(
                        "altered", "the chain was recomputed: it does not pass through the "
                        f"head signed as sent at seq {seq}", self.stream,
                        self.held[0][0], seq, rec.event_id, rec.doc_id,
                    )  # fmt: skip
                    for held_seq, held in self.held:
                        self._judge(held_seq, held)
                self.held = []
            return
        self._judge(seq, rec)

    def close(self) -> None:
        """The stream ended before its pending head: what was held was sent, not all of it
        arrived (or the rest is being sent again), and none of it is wrong."""
        self.within += len(self.held)
        self.held = []

    def _judge(self, seq: int, rec: Record) -> None:
        if not self._decided:
            self._cutoff = self.evidence.cutoff(self.host)
            self._decided = True
        cutoff = self._cutoff
        if cutoff is None:
            self.within += 1
        elif cutoff == CLOSED or not _ingested_after(rec.ingested, cutoff):
            self.outside.append((seq, rec.event_id))
        else:
            self.within += 1

    def findings(self) -> list[Finding]:
        found = [self.recomputed] if self.recomputed is not None else []
        if not self.outside:
            return found
        first, first_id = self.outside[0]
        last = self.outside[-1][0]
        count = len(self.outside)
        where = (
            "in no checkpoint of its agent" if self.last_signed == 0
            else f"after the head signed at seq {self.last_signed}"
        )  # fmt: skip
        why = (
            f"{count} event{'s' if count > 1 else ''} {where}, though the agent "
            f"({self.host or 'unknown host'}) signed later or stopped: not written by it, "
            "or its checkpoints were removed"
        )
        return [*found, Finding("unsigned", why, self.stream, first, last, first_id)]


def _ingested_after(text: str | None, cutoff: datetime | str) -> bool:
    if text is None or not isinstance(cutoff, datetime):
        return False
    try:
        return parse_time(text) >= cutoff
    except ValueError:
        return False


Ahead = list[tuple[int, bool, str, int]]


def _index(
    recs: Sequence[Record],
) -> tuple[dict[str, list[int]], dict[int, list[int]], Ahead, dict[str, int]]:
    """How the walk finds records: by ``prev``, by stored seq, by hash; and ``ahead``, where
    it can pick up after missing events (by position, intact ones first)."""
    by_prev: dict[str, list[int]] = defaultdict(list)
    by_seq: dict[int, list[int]] = defaultdict(list)
    for i, rec in enumerate(recs):
        if rec.prev is not None:
            by_prev[rec.prev].append(i)
        if rec.seq is not None:
            by_seq[rec.seq].append(i)
    ahead = sorted(
        (rec.seq, not rec.intact_at(rec.seq), rec.doc_id, i)
        for i, rec in enumerate(recs)
        if rec.seq is not None and rec.prev is not None
    )
    by_hash = {r.hash: i for i, r in enumerate(recs) if r.hash}
    return by_prev, by_seq, ahead, by_hash


class _Walk:
    def __init__(
        self,
        stream: str,
        records: Sequence[Record],
        evidence: Evidence,
        anchor: Head | None = None,
        tail: _Tail | None = None,
        *,
        limit: int | None = None,
    ) -> None:
        floor = evidence.anchor(stream).seq  # the --since anchor: nothing before it is read
        top = limit if limit is not None else float("inf")
        self.anchor = anchor if anchor is not None else evidence.anchor(stream)
        self.tail = tail if tail is not None else _Tail(evidence, stream, 0)
        self.recs = [r for r in records if r.seq is None or r.seq > floor]
        self.gaps = {
            s: g for s, g in evidence.gaps.get(stream, {}).items() if self.anchor.seq < s <= top
        }
        self.signed = {h.seq: h for h in evidence.signed(stream) if self.anchor.seq < h.seq <= top}
        self.windowed = limit is not None
        self.signed_before = max(
            (h.seq for h in evidence.signed(stream) if floor < h.seq <= self.anchor.seq),
            default=floor,
        )
        self.result = StreamResult(stream)
        self.by_prev, self.by_seq, self.ahead, self.by_hash = _index(self.recs)
        self.placed: dict[int, int] = {}  # record index -> position
        self.flagged: set[int] = set()
        self.at: dict[int, int | None] = {self.anchor.seq: None}  # position -> record index
        self.hashes: dict[int, str] = {self.anchor.seq: self.anchor.hash}
        self.undecided: set[int] = set()  # fork points no signed head decides

    def run(self) -> StreamResult:
        last_signed = max(self.signed, default=self.anchor.seq)
        if not self.windowed:
            self.tail.last_signed = max(self.tail.last_signed, last_signed)
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
            if rec.id_mismatch and chosen not in self.flagged:
                self._find("altered", f"stored under _id {rec.doc_id}, which is not its "
                           "event.id: a document swapped or copied", chosen, n)  # fmt: skip
            pos, cur = n, rec.hash or ""
            self.at[n], self.hashes[n] = chosen, cur
        self._check_signed()
        self._forks()
        for i, rec in enumerate(self.recs):
            if i not in self.placed and i not in self.flagged:
                taken = rec.seq is not None and (rec.seq in self.at or rec.seq <= self.anchor.seq)
                why = f"a second event at seq {rec.seq}" if taken else "an event"
                self._find("inserted", f"{why} that links nowhere in the chain", i, rec.seq)
        result = self.result
        result.signed_seq = last_signed
        result.head_seq = pos
        result.path = next((r.path for r in self.recs if r.path), None)
        for i, position in sorted(self.placed.items(), key=lambda item: item[1]):
            if i in self.flagged:
                continue
            if position > last_signed:
                self.tail.add(position, self.recs[i])
            else:
                result.intact += 1
        return result

    def _branch(self, i: int) -> bool:
        """Whether record ``i`` follows another record not on the walked chain (it goes on
        a second branch, reported as a fork, not placed by its position)."""
        j = self.by_hash.get(self.recs[i].prev or "")
        return j is not None and j not in self.placed and j != i

    def _reaches_signed(self, i: int, n: int) -> bool | None:
        """Whether the branch from record ``i`` at ``n`` passes a signed head (True), meets
        one with another hash (False), or meets none (None)."""
        todo = [(i, n)]
        seen: set[int] = set()
        met = None
        while todo:
            j, at = todo.pop()
            if j in seen:
                continue
            seen.add(j)
            rec = self.recs[j]
            head = self.signed.get(at)
            if head is not None:
                if head.hash == rec.hash:
                    return True
                met = False
                continue
            todo.extend((k, at + 1) for k in self.by_prev.get(rec.hash or "", ())
                        if k not in self.placed)  # fmt: skip
        return met

    def _forks(self) -> None:
        """Unplaced events that link correctly onto a walked position: a second branch."""
        position_of = {h: p for p, h in self.hashes.items()}
        for root, rec in enumerate(self.recs):
            if root in self.placed or root in self.flagged or rec.prev not in position_of:
                continue
            at = position_of[rec.prev] + 1
            if not rec.intact_at(at) or self.at.get(at) is None:
                continue  # a second branch needs a first one (a gap or a hole is no fork)
            branch = [root]
            while True:
                last = self.recs[branch[-1]]
                nexts = [k for k in self.by_prev.get(last.hash or "", ())
                         if k not in self.placed and k not in branch
                         and self.recs[k].intact_at(at + len(branch))]  # fmt: skip
                if not nexts:
                    break
                branch.append(min(nexts, key=lambda k: self.recs[k].doc_id))
            genuine = self.at.get(at)
            other = self.recs[genuine].event_id if genuine is not None else None
            first, end = self.recs[branch[0]], self.recs[branch[-1]]
            if at - 1 in self.undecided:
                verdict = ("no signed head decides which branch is genuine; the other goes on "
                           f"with event {other}")  # fmt: skip
            else:
                verdict = f"the signed branch goes on with event {other}"
            span = f"events {first.event_id}..{end.event_id}" if len(branch) > 1 else (
                f"event {first.event_id}")  # fmt: skip
            for k in branch:
                self.flagged.add(k)
            self.result.findings.append(
                Finding("fork", f"a second branch after seq {at - 1}: {span} "
                        f"({len(branch)} linked correctly); {verdict}",
                        self.result.stream, at, at + len(branch) - 1, first.event_id,
                        first.doc_id)
            )  # fmt: skip

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
        at_n = [i for i in self.by_seq.get(n, ()) if i not in self.placed and not self._branch(i)]
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
            if i in self.placed or rec.prev is None or (damaged and seq > n + 1) or self._branch(i):
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
        if len(candidates) == 1:
            return candidates[0]
        reach = {i: self._reaches_signed(i, n) for i in candidates}
        if not any(reach.values()):
            self.undecided.add(n - 1)

        def rank(i: int) -> tuple[int, bool, bool, str]:
            rec = self.recs[i]
            followed = any(j not in self.placed for j in self.by_prev.get(rec.hash or "", ()))
            order = {True: 0, None: 1, False: 2}[reach[i]]
            return (order, not followed, rec.seq != n, rec.doc_id)

        return min(candidates, key=rank)

    def _check_signed(self) -> None:
        previous = self.signed_before
        for seq in sorted(self.signed):
            head = self.signed[seq]
            walked = self.hashes.get(seq)
            if walked is not None and walked != head.hash:
                at = self.at.get(seq)
                rec = self.recs[at] if at is not None else None
                self.result.findings.append(
                    Finding("altered", "the chain was recomputed: it does not pass through the "
                            f"head signed at seq {seq} (event {head.event_id}); the event "
                            f"there now is {rec.event_id if rec else None}",
                            self.result.stream, previous + 1, seq,
                            rec.event_id if rec else None, rec.doc_id if rec else None)
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

    @property
    def verified(self) -> int:
        """Events covered by a valid signed checkpoint and found intact."""
        return sum(s.intact for s in self.streams)

    @property
    def verdict(self) -> Literal["intact", "not_intact", "unverified"]:
        """``unverified``: no finding, but nothing was vouched for either (no checkpoint
        under the keys given, no event, or only events newer than the last checkpoint)."""
        if self.all_findings:
            return "not_intact"
        return "intact" if self.checkpoints_valid and self.verified else "unverified"

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for finding in self.all_findings:
            found[finding.kind] += 1
        return dict(sorted(found.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "verdict": self.verdict,
            "events_intact": self.verified,
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
    streams: Iterable[tuple[str, Iterable[Record]]], unchained_records: Iterable[Record],
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
        result = verify_stream(stream, recs, evidence)
        if result.findings or result.intact or result.unsigned or stream not in evidence.anchors:
            report.streams.append(result)  # not one whose events all precede --since
    for stream in sorted(evidence.streams() - seen):
        result = verify_stream(stream, [], evidence)
        if result.findings:
            report.streams.append(result)
    report.findings.extend(unchained(record) for record in unchained_records)
    return report
