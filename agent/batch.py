"""Batching by count, bytes and time, and the bounded buffer that pushes back on reading.

Two small parts with one job each:

- :class:`Batcher` decides *when* a batch is complete: it holds at most one open batch and
  closes it on the first of ``max_events`` items, ``max_bytes`` serialized bytes, or
  ``max_wait`` seconds since its first item. It is pure (the clock is passed in), so its
  rules are tested without threads or sleeping.
- :class:`BoundedBuffer` is the only queue between the reader and the sender. It is bounded in
  items *and* bytes; when either bound is reached, :meth:`BoundedBuffer.put` blocks, so the
  reader stops reading and the file on disk is the buffer. Nothing is ever dropped.

An item larger than a bound is still admitted on its own (into an empty buffer, or as a batch
of one), otherwise one long line would stall the agent forever.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is complete; validated once so a bad value fails at start."""

    max_events: int = 2000
    max_bytes: int = 5 * 1024 * 1024
    max_wait: float = 0.25  # BATCH_MAX_WAIT's default

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1:
            raise ValueError("batch limits must be positive")
        if self.max_wait <= 0:
            raise ValueError("max_wait must be positive")


class Batch(Generic[T]):
    """Items in arrival order, their total size in bytes, and which limit closed it.

    A plain class: mypyc cannot build a generic dataclass, and this module is compiled.
    """

    def __init__(self, items: list[T] | None = None, size: int = 0, reason: str = "") -> None:
        self.items: list[T] = items if items is not None else []
        self.size = size
        self.reason = reason

    def __len__(self) -> int:
        return len(self.items)


class Batcher(Generic[T]):
    """Collects items into one open batch and says when it must be sent."""

    def __init__(self, limits: BatchLimits, clock: Clock = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._open: Batch[T] = Batch()
        self._opened_at = 0.0

    def __len__(self) -> int:
        return len(self._open)

    @property
    def size(self) -> int:
        return self._open.size

    def room(self) -> int:
        """How many more items the open batch takes before the count limit closes it."""
        return self._limits.max_events - len(self._open)

    def add(self, item: T, size: int) -> Batch[T] | None:
        """Add one item; return the batch if this item completed it (by count or bytes).

        An item that would push a non-empty batch past ``max_bytes`` closes the open batch
        first and starts the next one, so no batch exceeds the byte limit unless it is a
        single oversized item.
        """
        closed: Batch[T] | None = None
        if self._open.items and self._open.size + size > self._limits.max_bytes:
            closed = self._close("bytes")
        if not self._open.items:
            self._opened_at = self._clock()
        self._open.items.append(item)
        self._open.size += size
        if closed is not None:
            return closed
        if len(self._open) >= self._limits.max_events:
            return self._close("count")
        if self._open.size >= self._limits.max_bytes:
            return self._close("bytes")
        return None

    def deadline(self) -> float | None:
        """Clock time at which the open batch must be sent; ``None`` when it is empty."""
        if not self._open.items:
            return None
        return self._opened_at + self._limits.max_wait

    def poll(self) -> Batch[T] | None:
        """Return the open batch if it has waited ``max_wait``, else ``None``."""
        deadline = self.deadline()
        if deadline is not None and self._clock() >= deadline:
            return self._close("time")
        return None

    def flush(self, reason: str = "flush") -> Batch[T] | None:
        """Close the open batch now, whatever its size (drain and shutdown)."""
        if not self._open.items:
            return None
        return self._close(reason)

    def _close(self, reason: str) -> Batch[T]:
        batch, self._open = self._open, Batch()
        batch.reason = reason
        return batch


class BoundedBuffer(Generic[T]):
    """A FIFO bounded in items and bytes; ``put`` blocks when full (backpressure)."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("buffer bounds must be positive")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)

    @property
    def events(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def closed(self) -> bool:
        return self._closed

    def _has_room(self, size: int) -> bool:
        if not self._items:  # an oversized item is admitted alone rather than never
            return True
        return len(self._items) < self.max_events and self._bytes + size <= self.max_bytes

    def put(self, item: T, size: int, timeout: float | None = None) -> bool:
        """Append ``item``; wait while full. False if it timed out or the buffer is closed."""
        with self._not_full:
            if not self._not_full.wait_for(
                lambda: self._closed or self._has_room(size), timeout=timeout
            ):
                return False
            if self._closed:
                return False
            self._items.append((item, size))
            self._bytes += size
            self._not_empty.notify()
            return True

    def put_many(self, entries: Sequence[tuple[T, int]], timeout: float | None = None) -> int:
        """Append the leading ``entries`` that fit, in order, under one lock; how many went in.

        Waits up to ``timeout`` for room for the first one (the same admission rule as
        :meth:`put`, so an oversized entry still enters an empty buffer); 0 when it timed out
        or the buffer is closed. The caller offers the rest again: one lock round per group
        instead of one per line is what makes the reader's hand-over cheap.
        """
        if not entries:
            return 0
        with self._not_full:
            first = entries[0][1]
            if not self._not_full.wait_for(
                lambda: self._closed or self._has_room(first), timeout=timeout
            ):
                return 0
            if self._closed:
                return 0
            taken = 0
            for item, size in entries:
                if taken and not self._has_room(size):
                    break
                self._items.append((item, size))
                self._bytes += size
                taken += 1
            self._not_empty.notify()
            return taken

    def get(self, max_items: int, timeout: float | None = None) -> list[tuple[T, int]]:
        """Take up to ``max_items`` from the front, waiting up to ``timeout`` for the first.

        Returns an empty list on timeout, or when the buffer is closed and empty.
        """
        with self._not_empty:
            self._not_empty.wait_for(lambda: bool(self._items) or self._closed, timeout=timeout)
            taken: list[tuple[T, int]] = []
            while self._items and len(taken) < max_items:
                entry = self._items.popleft()
                self._bytes -= entry[1]
                taken.append(entry)
            if taken:
                self._not_full.notify_all()
            return taken

    def close(self) -> None:
        """No more puts; waiting getters and putters wake up. Items left stay for draining."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()
