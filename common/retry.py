"""When to try again: exponential backoff with full jitter, as a pure object.

The policy holds no clock and no random generator of its own; both are passed in, so the
behaviour is reproducible in tests without sleeping, and the sink stays the only place that
waits. There is no attempt limit on purpose: an audit agent retries until Elasticsearch takes
the document or the operator stops the agent; it never gives up and drops.

Full jitter (a delay drawn uniformly from ``[0, min(cap, base * multiplier**attempt)]``)
spreads the retries of many agents after a shared outage instead of having them hammer the
cluster in lockstep (see AWS's "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Random = Callable[[], float]  # uniform in [0, 1)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; validated once at construction."""

    base: float = 0.2
    multiplier: float = 2.0
    cap: float = 10.0
    floor: float = 0.05  # never spin: even a jittered zero waits this long

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0 or self.floor < 0:
            raise ValueError("base and cap must be positive, floor not negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.floor > self.cap:
            raise ValueError("floor must not exceed cap")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before retry number ``attempt`` (0 for the first)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # Stop multiplying once past the cap: avoids float overflow after very long outages.
        bound = self.base
        for _ in range(attempt):
            bound *= self.multiplier
            if bound >= self.cap:
                return self.cap
        return min(bound, self.cap)

    def delay(self, attempt: int, random: Random) -> float:
        """The jittered delay before retry number ``attempt``, in seconds."""
        return max(self.floor, random() * self.ceiling(attempt))


@dataclass
class Backoff:
    """One problem's progress through a policy: attempts made and when the next may start.

    ``hint`` lets the server's own advice (a ``Retry-After`` header) lengthen a delay; it never
    shortens one below the policy, and it is capped by the policy too.
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Clock = time.monotonic
    random: Random = _random.random
    attempts: int = 0
    not_before: float = 0.0

    def failed(self, hint: float | None = None) -> float:
        """Record a failure; return the delay chosen before the next try."""
        delay = self.policy.delay(self.attempts, self.random)
        if hint is not None and hint > delay:
            delay = min(hint, self.policy.cap)
        self.attempts += 1
        self.not_before = self.clock() + delay
        return delay

    def remaining(self) -> float:
        """Seconds left before the next try may start (0 when it may start now)."""
        return max(0.0, self.not_before - self.clock())

    def succeeded(self) -> None:
        """The problem went away: the next failure starts again from the base delay."""
        self.attempts = 0
        self.not_before = 0.0
