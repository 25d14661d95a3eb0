"""Test doubles shared by the unit tests: a clock that only moves when told to."""

from __future__ import annotations


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
