"""The ordered finalizer: acknowledgements come back in any order, checkpoints move in order.

Lines are registered in the order they were read. Elasticsearch answers per item, retries
finish late, dead-letter writes finish early: acknowledgements arrive in any order. A file's
checkpoint may only move past a line when that line *and every line read before it from the
same file* has its fate settled, otherwise a crash could skip an undelivered line. So per
file we keep the registered lines in read order and advance over the longest acknowledged
prefix (Vector's ordered finalizer).

A file identity that starts again at an earlier offset (truncated in place, same first
line) begins a new sequence: the lines read before the truncation still settle, but they no
longer move the checkpoint, because their bytes are gone from the file and the checkpoint
now counts from the new start. :meth:`OrderedFinalizer.detach` does the same when the
registry was reset before the new sequence's first line arrived. Each registration returns a
:class:`Ticket`; acknowledging a ticket twice is a bug and raises, because every line has
exactly one fate.

The finalizer is not thread-safe by design: one thread (the sender) owns it.
:class:`Checkpointer` applies its results to the registry and decides when to write it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from common.retry import Retrier

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class Ticket(Generic[K]):
    """One registered line: which file, where it ends, whether it is settled."""

    __slots__ = ("done", "end", "key", "offset", "path", "stream")

    def __init__(self, key: K, path: str, offset: int, end: int, stream: deque[Ticket[K]]) -> None:
        self.key = key
        self.path = path
        self.offset = offset
        self.end = end
        self.done = False
        self.stream = stream

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"Ticket({self.key!r}, {self.path!r}, {self.offset}..{self.end}, {state})"


@dataclass(frozen=True)
class Checkpoint(Generic[K]):
    """Every line of ``key`` read before ``end`` is settled; ``path`` is where it was seen."""

    key: K
    path: str
    end: int


class OrderedFinalizer(Generic[K]):
    """Per file, the checkpoint advances only past the longest contiguous settled prefix."""

    def __init__(self) -> None:
        self._streams: dict[K, deque[Ticket[K]]] = {}
        self._pending = 0

    def register(self, key: K, path: str, offset: int, end: int) -> Ticket[K]:
        """Record a line in read order; it holds back its file's checkpoint until acked."""
        if end < offset:
            raise ValueError(f"line ends ({end}) before it starts ({offset})")
        stream = self._streams.get(key)
        if stream is not None and offset < stream[-1].end:
            self.detach(key)  # the file starts over: a new sequence
            stream = None
        if stream is None:
            stream = self._streams[key] = deque()
        ticket = Ticket(key, path, offset, end, stream)
        stream.append(ticket)
        self._pending += 1
        return ticket

    def detach(self, key: K) -> int:
        """End a file's current sequence: its unsettled lines will no longer move a checkpoint.

        Returns how many lines were detached (they still count as pending until acked).
        """
        stream = self._streams.pop(key, None)
        return 0 if stream is None else sum(1 for ticket in stream if not ticket.done)

    def ack(self, ticket: Ticket[K]) -> Checkpoint[K] | None:
        """Settle one line; return the file's new checkpoint if it moved, else ``None``."""
        if ticket.done:
            raise ValueError(f"{ticket!r} was acknowledged twice")
        ticket.done = True
        self._pending -= 1
        stream = ticket.stream
        if self._streams.get(ticket.key) is not stream or not stream[0].done:
            return None  # detached, or an earlier line is still pending
        last = stream.popleft()
        while stream and stream[0].done:
            last = stream.popleft()
        if not stream:
            del self._streams[ticket.key]
        return Checkpoint(last.key, last.path, last.end)

    def ack_all(self, tickets: Iterable[Ticket[K]]) -> dict[K, Checkpoint[K]]:
        """Settle several lines; return the furthest checkpoint reached per file."""
        moved: dict[K, Checkpoint[K]] = {}
        for ticket in tickets:
            checkpoint = self.ack(ticket)
            if checkpoint is not None:
                moved[checkpoint.key] = checkpoint
        return moved

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


class Position(Protocol):
    acked: int


class CheckpointStore(Protocol[K_contra]):
    """What the checkpointer needs from the registry (``agent.files.Registry`` fits)."""

    def get(self, key: K_contra, /) -> Position | None: ...

    def ack(self, key: K_contra, path: str, end: int, /) -> None: ...

    def mark_sent(self, key: K_contra, path: str, end: int, /) -> None: ...

    def save(self) -> None: ...


class Checkpointer(Generic[K]):
    """Moves the registry with the finalizer, and decides when it is written to disk.

    Two kinds of write: after acknowledgements, throttled to one per ``interval`` (a crash
    then re-reads at most that much, and the replay window keeps it duplicate-free); and
    before each bulk request, *always*, because the window ``[acked, sent)`` must be on disk
    before anything in it can reach the index. A failed write of the second kind is retried
    until it works (nothing is sent meanwhile); of the first kind it waits for the next one.

    When the registry's checkpoint for a file went *back* (the tailer reset it: truncated in
    place, same first line) the finalizer's older lines for it are detached, so they cannot
    push the checkpoint past content that is no longer there.
    """

    def __init__(
        self,
        store: CheckpointStore[K],
        finalizer: OrderedFinalizer[K] | None = None,
        *,
        interval: float = 1.0,
        retrier: Retrier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.finalizer = finalizer if finalizer is not None else OrderedFinalizer()
        self.interval = interval
        self.retrier = retrier if retrier is not None else Retrier()
        self._clock = clock
        self._applied: dict[K, int] = {}
        self._last_save = float("-inf")
        self._lock = threading.Lock()
        self.saves = 0

    def settle(self, tickets: Iterable[Ticket[K]]) -> None:
        """Acknowledge lines, move each file's checkpoint, write at most every ``interval``."""
        for key, checkpoint in self.finalizer.ack_all(tickets).items():
            known = self.store.get(key)
            if known is not None and known.acked < self._applied.get(key, 0):
                self.finalizer.detach(key)
                self._applied[key] = known.acked
                continue
            self.store.ack(key, checkpoint.path, checkpoint.end)
            self._applied[key] = checkpoint.end
        self.save()

    def mark_sent(self, ends: Mapping[K, tuple[str, int]]) -> bool:
        """Record the window durably before a request; False only when interrupted."""
        for key, (path, end) in ends.items():
            self.store.mark_sent(key, path, end)
        return self.save(force=True, required=True)

    def save(self, *, force: bool = False, required: bool = False) -> bool:
        """Write the registry; True when written (or nothing needed writing)."""
        if not force and self._clock() - self._last_save < self.interval:
            return True
        written = self.retrier.call(
            self._write, retry_on=(OSError,), event="checkpoint_write_failed", once=not required
        )
        if written:
            self._last_save = self._clock()
            self.saves += 1
        return written

    def _write(self) -> None:
        with self._lock:
            self.store.save()
