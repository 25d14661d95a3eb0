"""When to try again, and the one loop that does: backoff with full jitter, then wait.

:class:`RetryPolicy` and :class:`Backoff` are pure: they hold no clock and no random generator
of their own; both are passed in, so the behaviour is reproducible in tests without sleeping.
:class:`Retrier` is the only retry loop of the agent: every place that tries again (bulk
requests, the replay check, dead-letter and checkpoint writes, setup at start) goes through
it, so all of them back off the same way, stop the same way when the shutdown grace runs out
(the ``interrupt`` event), and log the same fields (event name, error, attempt, delay).
There is no attempt limit on purpose: an audit agent retries until Elasticsearch takes the
document or the operator stops the agent; it never gives up and drops.

Full jitter (a delay drawn uniformly from ``[0, min(cap, base * multiplier**attempt)]``)
spreads the retries of many agents after a shared outage instead of having them hammer the
cluster in lockstep (see AWS's "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.log import get_logger

Clock = Callable[[], float]
Random = Callable[[], float]  # uniform in [0, 1)
Sleep = Callable[[float], object]  # waits up to that many seconds (may return early)

log = get_logger(__name__)


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


class Retrier:
    """The retry loop: a policy, an interrupt, a heartbeat, and one way to log a failure.

    ``sleep`` waits; by default it is ``interrupt.wait``, so setting the interrupt ends every
    wait at once. Tests pass a fake clock's ``sleep`` and never wait for real.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        interrupt: threading.Event | None = None,
        *,
        clock: Clock = time.monotonic,
        random: Random = _random.random,
        sleep: Sleep | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self.interrupt = interrupt if interrupt is not None else threading.Event()
        self.clock = clock
        self.random = random
        self.heartbeat = heartbeat
        self._sleep = sleep if sleep is not None else self.interrupt.wait

    @property
    def interrupted(self) -> bool:
        """Whether the interrupt is set: every retry has stopped."""
        return self.interrupt.is_set()

    def backoff(self) -> Backoff:
        """A fresh backoff for one problem, on this retrier's policy, clock and randomness."""
        return Backoff(self.policy, self.clock, self.random)

    def pause(
        self, backoff: Backoff, event: str, *, hint: float | None = None, **fields: Any
    ) -> bool:
        """Count a failure, log ``event`` with attempt and delay, wait; False if interrupted.

        ``hint`` is the server's Retry-After; the heartbeat is called at least once a second
        while waiting, so a long backoff never looks like a hung thread.
        """
        if self.interrupt.is_set():
            return False
        delay = backoff.failed(hint)
        log.warning(event, attempt=backoff.attempts, delay=round(delay, 3), **fields)
        deadline = self.clock() + delay
        while (left := deadline - self.clock()) > 0:
            if self.heartbeat is not None:
                self.heartbeat()
            self._sleep(min(left, 1.0))
            if self.interrupt.is_set():
                return False
        return True

    def call(
        self,
        attempt: Callable[[], object],
        *,
        retry_on: tuple[type[Exception], ...],
        event: str,
        once: bool = False,
        **fields: Any,
    ) -> bool:
        """Run ``attempt`` until it returns; True then, False when interrupted first.

        Exceptions in ``retry_on`` are logged as ``event`` and retried after a backoff; any
        other exception propagates. With ``once`` a failure is logged and False returned at
        once (the caller tries again on its own schedule).
        """
        backoff = self.backoff()
        while True:
            if self.heartbeat is not None:
                self.heartbeat()
            try:
                attempt()
            except retry_on as exc:
                if once:
                    log.warning(event, error=str(exc), attempt=1, delay=None, **fields)
                    return False
                if not self.pause(backoff, event, error=str(exc), **fields):
                    return False
            else:
                return True
