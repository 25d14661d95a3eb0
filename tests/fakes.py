"""Test doubles shared by the unit tests: a clock that only moves when told to, a retry loop
on it, and a registry kept in memory."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent.files import FileKey
from common.retry import Retrier, RetryPolicy


class FakeClock:
    """A monotonic clock for tests; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakePosition:
    def __init__(self) -> None:
        self.acked = 0
        self.sent = 0
        self.chain: dict[str, Any] | None = None
        self.pending: dict[str, Any] | None = None


class MemoryStore:
    """A registry kept in memory; ``failures`` saves raise OSError before one succeeds."""

    def __init__(self, failures: int = 0) -> None:
        self.entries: dict[FileKey, FakePosition] = {}
        self.paths: dict[FileKey, str] = {}
        self.saved: list[dict[FileKey, tuple[int, int]]] = []
        self.failures = failures
        self.forgotten: list[float] = []

    def get(self, key: FileKey) -> FakePosition | None:
        return self.entries.get(key)

    def ack(self, key: FileKey, path: str, end: int, chain: dict[str, Any] | None = None) -> None:
        entry = self.entries.setdefault(key, FakePosition())
        if end > entry.acked:
            entry.chain = chain
        entry.acked = max(entry.acked, end)
        entry.sent = max(entry.sent, end)

    def mark_sent(
        self, key: FileKey, path: str, end: int, pending: dict[str, Any] | None = None
    ) -> None:
        entry = self.entries.setdefault(key, FakePosition())
        if end > entry.sent:
            entry.pending = pending
        entry.sent = max(entry.sent, end)

    def reset(self, key: FileKey, path: str) -> None:
        entry = self.entries.setdefault(key, FakePosition())
        entry.acked = entry.sent = 0

    def move(self, key: FileKey, path: str) -> None:
        self.paths[key] = path

    def forget(self, older_than: float) -> int:
        self.forgotten.append(older_than)
        return 0

    def save(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        self.saved.append({k: (e.acked, e.sent) for k, e in self.entries.items()})


def retrier_on(
    clock: FakeClock, interrupt: threading.Event, sleep: Callable[[float], None]
) -> Retrier:
    """The retry loop on a fake clock: backoff 1, 2, 4, 4... seconds, no jitter."""
    return Retrier(
        RetryPolicy(base=1.0, cap=4.0), interrupt, clock=clock, random=lambda: 1.0, sleep=sleep
    )
