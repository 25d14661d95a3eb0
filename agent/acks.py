"""Acknowledgements come back in any order; checkpoints move in order, from one place.

Lines are registered in the order they were read. Elasticsearch answers per item, retries
finish late, dead-letter writes finish early: acknowledgements arrive in any order. A file's
checkpoint may only move past a line when that line *and every line read before it from the
same file* has its fate settled, otherwise a crash could skip an undelivered line. So per
file the :class:`OrderedFinalizer` keeps the registered lines in read order and advances
over the longest acknowledged prefix (Vector's ordered finalizer).

Each line carries its file identity's **generation** (:mod:`agent.files.facts`). A newer
generation (the file was truncated and is read again from 0) begins a new sequence; a line
of an older generation still settles (it was delivered or dead-lettered) but no longer moves
the checkpoint, because its bytes are gone from the file and the checkpoint now counts from
the new start. That is decided by comparing the two numbers, nothing else. Each registration
returns a :class:`Ticket`; acknowledging a ticket twice is a bug and raises, because every
line has exactly one fate.

The :class:`Checkpointer` is the **only writer of the registry**, and every side effect of
an acknowledgement goes through it: it applies the tailer's facts (opened, reset, copied,
moved, gone) in stream order; it notes each line's place in its hash chain and each refused
event in the ledger (``agent.evidence.chains.Ledger``); as lines settle it moves checkpoints,
and its store (``agent.evidence.keeper.ChainedStore``) records the ledger's chain head at
each new checkpoint, and the gaps it settles, in the same registry entry and the same atomic
write; it owns the :class:`ReplayWindow` (what may already be in the index), recorded before
each request; and it decides when to write the file. None of these classes is thread-safe
by design: one thread (the sender) owns them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from agent.evidence.chains import Ledger, Place
from agent.evidence.keeper import CheckpointStore
from agent.files.facts import Copied, Fact, Gone, Moved, Opened, Reset
from agent.files.identity import FileKey
from common.log import get_logger
from common.retry import Retrier

K = TypeVar("K", bound=Hashable)

log = get_logger(__name__)


class Ticket(Generic[K]):
    """One registered line: which file and generation, where it ends, whether it is settled.

    ``stream`` is the sequence it belongs to; None for a line of an older generation, which
    settles without ever moving a checkpoint.
    """

    __slots__ = ("done", "end", "generation", "key", "offset", "path", "stream")

    def __init__(
        self,
        key: K,
        generation: int,
        path: str,
        offset: int,
        end: int,
        *,
        stream: deque[Ticket[K]] | None,
    ) -> None:
        self.key = key
        self.generation = generation
        self.path = path
        self.offset = offset
        self.end = end
        self.done = False
        self.stream = stream

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return (
            f"Ticket({self.key!r}#{self.generation}, {self.path!r}, "
            f"{self.offset}..{self.end}, {state})"
        )


class Watermark(Generic[K]):
    """Every line of ``key`` read before ``end`` is settled; ``path`` is where it was seen.

    What the registry records as a file's checkpoint (its ``acked`` offset); the signed
    checkpoints of the hash chains are ``chain.checkpoint.Checkpoint``. A plain class, not a
    dataclass: mypyc cannot build a generic dataclass, and this module is compiled.
    """

    __slots__ = ("end", "key", "path")

    def __init__(self, key: K, path: str, end: int) -> None:
        self.key = key
        self.path = path
        self.end = end

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Watermark):
            return NotImplemented
        return (self.key, self.path, self.end) == (other.key, other.path, other.end)

    def __hash__(self) -> int:
        return hash((self.key, self.path, self.end))

    def __repr__(self) -> str:
        return f"Watermark({self.key!r}, {self.path!r}, {self.end})"


class OrderedFinalizer(Generic[K]):
    """Per file, the checkpoint advances only past the longest contiguous settled prefix."""

    def __init__(self) -> None:
        self._streams: dict[K, deque[Ticket[K]]] = {}
        self._generations: dict[K, int] = {}
        self._pending = 0

    def begin(self, key: K, generation: int) -> bool:
        """Generation ``generation`` of ``key`` starts; older lines stop counting.

        Returns False (and changes nothing) when ``generation`` is not newer than the
        current one.
        """
        if generation <= self._generations.get(key, -1):
            return False
        self._generations[key] = generation
        _detach(self._streams.pop(key, None))
        return True

    def retire(self, key: K) -> None:
        """Forget a file's generation once nothing of it is pending (the file is gone)."""
        if key not in self._streams:
            self._generations.pop(key, None)

    def register(self, key: K, generation: int, path: str, offset: int, end: int) -> Ticket[K]:
        """Record a line in read order; it holds back its file's checkpoint until acked."""
        _check_span(offset, end)  # before the generation can begin
        return self.register_run(key, generation, path, [(offset, end)])[0]

    def register_run(
        self, key: K, generation: int, path: str, spans: Sequence[tuple[int, int]]
    ) -> list[Ticket[K]]:
        """Record consecutive lines of one file, generation and path, in read order: what
        :meth:`register` does per line, with the file's generation and stream looked up once
        per run instead of once per line (the settler registers a batch at a time)."""
        self.begin(key, generation)
        tickets: list[Ticket[K]] = []
        if generation < self._generations[key]:  # stale: these lines never move anything
            for offset, end in spans:
                _check_span(offset, end)
                self._pending += 1
                tickets.append(Ticket(key, generation, path, offset, end, stream=None))
            return tickets
        stream = self._streams.get(key)
        for offset, end in spans:
            _check_span(offset, end)
            self._pending += 1
            if stream is not None and offset < stream[-1].end:
                # Within one generation offsets only grow; should that ever break, the older
                # lines must not move the checkpoint over the newer ones.
                log.warning("line_out_of_order", key=str(key), offset=offset, after=stream[-1].end)
                _detach(stream)
                stream = None
            if stream is None:
                stream = self._streams[key] = deque()
            ticket = Ticket(key, generation, path, offset, end, stream=stream)
            stream.append(ticket)
            tickets.append(ticket)
        return tickets

    def ack(self, ticket: Ticket[K]) -> Watermark[K] | None:
        """Settle one line; return the file's new checkpoint if it moved, else ``None``."""
        last = self._release(ticket)
        return None if last is None else Watermark(last.key, last.path, last.end)

    def ack_all(self, tickets: Iterable[Ticket[K]]) -> dict[K, Watermark[K]]:
        """Settle several lines; return the furthest checkpoint reached per file.

        One watermark per file and run of tickets, not one per line: a batch settled in read
        order moves its file's checkpoint once, and each key is hashed once per run.
        """
        moved: dict[K, Watermark[K]] = {}
        furthest: Ticket[K] | None = None
        for ticket in tickets:
            last = self._release(ticket)
            if last is None:
                continue
            if furthest is not None and last.key is not furthest.key:
                moved[furthest.key] = Watermark(furthest.key, furthest.path, furthest.end)
            furthest = last
        if furthest is not None:
            moved[furthest.key] = Watermark(furthest.key, furthest.path, furthest.end)
        return moved

    def _release(self, ticket: Ticket[K]) -> Ticket[K] | None:
        """Mark a line settled; the last line its file's checkpoint now moves past, if any.

        A stream no longer current (an older generation, or replaced after lines came out
        of order) was emptied when it was replaced, so it never moves a checkpoint.
        """
        if ticket.done:
            raise ValueError(f"{ticket!r} was acknowledged twice")
        ticket.done = True
        self._pending -= 1
        stream = ticket.stream
        if not stream or not stream[0].done:
            return None  # an older generation, or an earlier line is still pending
        last = stream.popleft()
        while stream and stream[0].done:
            last = stream.popleft()
        if not stream:
            del self._streams[ticket.key]
        return last

    def generation(self, key: K) -> int | None:
        """The current generation of ``key``, if any line or fact of it was seen."""
        return self._generations.get(key)

    @property
    def pending(self) -> int:
        """Lines registered and not yet acknowledged, over all files."""
        return self._pending

    def pending_for(self, key: K) -> int:
        """Lines of one file not yet released: unacknowledged, or acknowledged out of order."""
        stream = self._streams.get(key)
        return 0 if stream is None else sum(1 for ticket in stream if not ticket.done)

    def files(self) -> list[K]:
        """Files with lines still holding back their checkpoint."""
        return list(self._streams)


def _check_span(offset: int, end: int) -> None:
    if end < offset:
        raise ValueError(f"line ends ({end}) before it starts ({offset})")


def _detach(stream: deque[Ticket[K]] | None) -> None:
    """A stream replaced by a newer one: its lines still settle, never moving a checkpoint."""
    if stream is not None:
        stream.clear()


class ReplayWindow:
    """Which lines may already be in the index: the only ones worth a lookup before writing.

    Built from the registry at start: per file content (the content id, shared by a file,
    its renamed self and its copies), lines before the highest ``sent`` of an entry whose
    ``sent`` exceeds its ``acked`` were possibly sent by the previous run; and when the
    entries of one content disagree (a copy found before its original had a checkpoint,
    resuming from its own, below the original's), lines before the highest ``sent`` of any
    of them may be in the index under the other identity. While running, a
    line is also covered when its content was already sent past its offset, under another
    file identity (a ``copytruncate`` copy read again from its original's checkpoint) or the
    same one (a file read again from its checkpoint). So a 409 for a line that is not covered
    means another line or agent holds its id. Owned by the :class:`Checkpointer`, which
    records into it what it records as ``sent`` in the registry.
    """

    def __init__(self, positions: Iterable[tuple[str, str, int, int]] = ()) -> None:
        """``positions``: (content id, key, acked, sent) per registry entry."""
        self._startup: dict[str, int] = {}
        lowest: dict[str, int] = {}  # per content, the lowest acknowledged offset
        for content, _key, acked, sent in positions:
            if sent > self._startup.get(content, 0):
                self._startup[content] = sent
            lowest[content] = min(lowest.get(content, acked), acked)
        for content, low in lowest.items():  # every entry at the same, settled offset
            if low >= self._startup.get(content, 0):
                self._startup.pop(content, None)
        self._sent: dict[str, dict[str, int]] = {}  # content -> key -> end

    def __bool__(self) -> bool:
        # Anything sent in this run counts: a copy's very first lines may replay it (its own
        # first batch is checked too, or its 409s would be taken for another line's ids).
        return bool(self._startup) or bool(self._sent)

    def covers(self, content: str, key: str, offset: int) -> bool:
        """True when the line of ``key`` (content ``content``) at ``offset`` may already be
        in the index."""
        return offset < self.limit(content)

    def limit(self, content: str) -> int:
        """Lines of content ``content`` starting before this offset may already be in the
        index; one number per file, so a batch asks once per file, not once per line."""
        if not self:
            return 0  # the common case: no window at all
        startup = self._startup.get(content, 0)
        sent = self._sent.get(content)
        # Sent already in this run, under this identity (a file read again from its
        # checkpoint, after a rename is noticed) or another (a copy): a replay.
        return max(startup, *sent.values()) if sent else startup

    def note_sent(self, content: str, key: str, end: int) -> None:
        """Record that lines of ``key`` up to ``end`` are being sent by this run."""
        ends = self._sent.setdefault(content, {})
        if end > ends.get(key, 0):
            ends[key] = end


class Checkpointer:
    """The registry's one writer: facts, settled lines, chain places and the replay window.

    Two kinds of write to disk: after acknowledgements, throttled to one per ``interval`` (a
    crash then re-reads at most that much, and the replay window keeps it duplicate-free);
    and before each bulk request, *always*, because the window ``[acked, sent)`` must be on
    disk before anything in it can reach the index. A failed write of the second kind is
    retried until it works (nothing is sent meanwhile); of the first kind it waits for the
    next one.
    """

    def __init__(
        self,
        store: CheckpointStore[FileKey],
        finalizer: OrderedFinalizer[FileKey] | None = None,
        *,
        ledger: Ledger | None = None,
        window: ReplayWindow | None = None,
        interval: float = 1.0,
        retrier: Retrier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.finalizer: OrderedFinalizer[FileKey] = (
            finalizer if finalizer is not None else OrderedFinalizer()
        )
        self.ledger = ledger  # the same one the store takes each acknowledged head from
        self.window = window if window is not None else ReplayWindow()
        self.interval = interval
        self.retrier = retrier if retrier is not None else Retrier()
        self._clock = clock
        self._last_save = float("-inf")
        self.saves = 0

    def apply(self, fact: Fact) -> None:
        """Apply what the tailer saw, at its place in the stream (before later lines)."""
        if isinstance(fact, Opened):
            self.finalizer.begin(fact.key, fact.generation)
        elif isinstance(fact, Reset):
            known = self.store.get(fact.key) is not None
            if self.finalizer.begin(fact.key, fact.generation) and known:
                self.store.reset(fact.key, fact.path)
        elif isinstance(fact, Copied):
            if self.finalizer.begin(fact.key, fact.generation):
                self.window.note_sent(fact.key.content_id, str(fact.key), fact.sent)
                self.store.mark_sent(fact.key, fact.path, fact.sent, pending=fact.pending)
                self.store.ack(fact.key, fact.path, fact.acked, chain=fact.chain)
        elif isinstance(fact, Moved):
            self.store.move(fact.key, fact.path)
        elif isinstance(fact, Gone):
            self.finalizer.retire(fact.key)

    @property
    def pending(self) -> int:
        """Lines registered and not yet settled, over all files."""
        return self.finalizer.pending

    @property
    def replaying(self) -> bool:
        """Whether any line may already be in the index (a window at all)."""
        return bool(self.window)

    def register(
        self,
        key: FileKey,
        generation: int,
        path: str,
        offset: int,
        end: int,
        *,
        place: Place | None = None,
    ) -> Ticket[FileKey]:
        """Register a line with the finalizer (see :meth:`OrderedFinalizer.register`) and
        its place in its chain with the ledger, which hands it over at its checkpoint."""
        if place is not None and self.ledger is not None:
            self.ledger.note(str(key), end, place)
        return self.finalizer.register(key, generation, path, offset, end)

    def register_run(
        self,
        key: FileKey,
        generation: int,
        path: str,
        spans: Sequence[tuple[int, int]],
        places: Sequence[Place | None],
    ) -> list[Ticket[FileKey]]:
        """Register consecutive lines of one file (see :meth:`OrderedFinalizer.register_run`)
        with their chain places (``places[i]`` for ``spans[i]``): a batch in one call."""
        if self.ledger is not None:
            name = str(key)
            for (_offset, end), place in zip(spans, places, strict=True):
                if place is not None:
                    self.ledger.note(name, end, place)
        return self.finalizer.register_run(key, generation, path, spans)

    def refused(self, key: FileKey, end: int, reason: str) -> None:
        """The event of the line ending at ``end`` will not be in the index: a gap in its
        chain, declared with the acknowledgement that settles it."""
        if self.ledger is not None:
            self.ledger.refused(str(key), end, reason)

    def covers(self, key: FileKey, offset: int) -> bool:
        """Whether the line of ``key`` at ``offset`` may already be in the index."""
        return offset < self.window.limit(key.content_id)

    def replay_limit(self, key: FileKey) -> int:
        """Lines of ``key`` starting before this offset may already be in the index."""
        return self.window.limit(key.content_id)

    def settle(self, tickets: Iterable[Ticket[FileKey]]) -> None:
        """Acknowledge lines, move each file's checkpoint, write at most every ``interval``."""
        for key, checkpoint in self.finalizer.ack_all(tickets).items():
            self.store.ack(key, checkpoint.path, checkpoint.end)
        self.save()

    def mark_sent(self, ends: Mapping[FileKey, tuple[str, int]]) -> bool:
        """Record the window (in memory and durably) before a request; False only when
        interrupted."""
        for key, (path, end) in ends.items():
            self.window.note_sent(key.content_id, str(key), end)
            self.store.mark_sent(key, path, end)
        return self.save(force=True, required=True)

    def forget(self, older_than: float) -> int:
        """Drop entries of files long gone from disk (see ``Registry.forget``)."""
        return self.store.forget(older_than)

    def save(self, *, force: bool = False, required: bool = False) -> bool:
        """Write the registry; True when written (or nothing needed writing)."""
        if not force and self._clock() - self._last_save < self.interval:
            return True
        written = self.retrier.call(
            self.store.save, retry_on=(OSError,), event="checkpoint_write_failed", once=not required
        )
        if written:
            self._last_save = self._clock()
            self.saves += 1
        return written
