"""The retry policy: exponential, capped, fully jittered, and never giving up."""

from __future__ import annotations

import threading

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from common.retry import Backoff, Retrier, RetryPolicy
from tests.fakes import FakeClock


class TestRetryPolicy:
    def test_ceiling_doubles_until_the_cap(self) -> None:
        """The bound grows by the multiplier per attempt and stops at the cap."""
        policy = RetryPolicy(base=0.5, multiplier=2.0, cap=5.0)
        assert [policy.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]

    def test_full_jitter_spans_zero_to_ceiling(self) -> None:
        """Randomness 0 gives the floor, randomness near 1 gives almost the ceiling."""
        policy = RetryPolicy(base=1.0, cap=8.0, floor=0.05)
        assert policy.delay(3, lambda: 0.0) == 0.05
        assert policy.delay(3, lambda: 0.999) == pytest.approx(7.992)
        assert policy.delay(3, lambda: 0.5) == pytest.approx(4.0)

    def test_no_attempt_limit(self) -> None:
        """A very late attempt still has a finite, capped delay (no overflow, no give-up)."""
        policy = RetryPolicy(cap=10.0)
        assert policy.ceiling(10_000) == 10.0
        assert policy.delay(10_000, lambda: 0.5) == 5.0

    @given(attempt=st.integers(0, 500), r=st.floats(0.0, 0.999999))
    def test_delay_always_within_floor_and_cap(self, attempt: int, r: float) -> None:
        """Whatever the attempt and the random draw, the delay stays within [floor, cap]."""
        policy = RetryPolicy()
        assert policy.floor <= policy.delay(attempt, lambda: r) <= policy.cap

    @pytest.mark.parametrize(
        "kwargs",
        [{"base": 0}, {"cap": -1}, {"multiplier": 0.5}, {"floor": -0.1}, {"floor": 20, "cap": 10}],
    )
    def test_bad_configuration_fails_at_construction(self, kwargs: dict[str, float]) -> None:
        """Invalid parameters are refused when the policy is built, not when it is used."""
        with pytest.raises(ValueError, match="must"):
            RetryPolicy(**kwargs)

    def test_negative_attempt_refused(self) -> None:
        """Attempts count from zero."""
        with pytest.raises(ValueError, match="attempt"):
            RetryPolicy().ceiling(-1)


class TestBackoff:
    def test_delays_grow_and_schedule_the_next_try(self) -> None:
        """Each failure uses the next attempt's ceiling and sets when the next try may start."""
        clock = FakeClock(100.0)
        backoff = Backoff(RetryPolicy(base=1.0, cap=30.0), clock, lambda: 0.5)
        assert backoff.failed() == 0.5
        assert backoff.failed() == 1.0
        assert backoff.failed() == 2.0
        assert backoff.attempts == 3
        assert backoff.remaining() == 2.0
        clock.now += 1.5
        assert backoff.remaining() == pytest.approx(0.5)
        clock.now += 1.0
        assert backoff.remaining() == 0.0

    def test_success_resets(self) -> None:
        """After a success the next failure starts again from the base delay."""
        backoff = Backoff(RetryPolicy(base=1.0), FakeClock(100.0), lambda: 0.5)
        for _ in range(5):
            backoff.failed()
        backoff.succeeded()
        assert backoff.attempts == 0
        assert backoff.failed() == 0.5

    def test_server_hint_lengthens_but_is_capped(self) -> None:
        """A Retry-After longer than the jittered delay wins, up to the policy's cap."""
        backoff = Backoff(RetryPolicy(base=1.0, cap=10.0), FakeClock(100.0), lambda: 0.1)
        assert backoff.failed(hint=3.0) == 3.0
        assert backoff.failed(hint=60.0) == 10.0
        assert backoff.failed(hint=0.01) == pytest.approx(0.4)


class Flaky:
    """Fails ``failures`` times with ``error``, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error if error is not None else OSError("disk full")
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def retrier(clock: FakeClock, interrupt: threading.Event | None = None) -> Retrier:
    return Retrier(
        RetryPolicy(base=1.0, cap=8.0), interrupt, clock=clock, random=lambda: 1.0,
        sleep=clock.sleep,
    )  # fmt: skip


class TestRetrier:
    def test_retries_until_it_works(self) -> None:
        """Failures back off exponentially on the given clock; success returns True."""
        clock = FakeClock()
        attempt = Flaky(3)
        assert retrier(clock).call(attempt, retry_on=(OSError,), event="x_failed")
        assert attempt.calls == 4
        assert clock.now == 1.0 + 2.0 + 4.0

    def test_other_errors_propagate(self) -> None:
        """Only the named exceptions are retried; a bug is not."""
        with pytest.raises(KeyError):
            retrier(FakeClock()).call(
                Flaky(1, KeyError("bug")), retry_on=(OSError,), event="x_failed"
            )

    def test_interrupt_ends_the_retries(self) -> None:
        """Once the interrupt is set, the next wait returns False and nothing is retried."""
        clock, interrupt = FakeClock(), threading.Event()
        attempt = Flaky(1000)

        def sleep(seconds: float) -> None:
            clock.sleep(seconds)
            if clock.now >= 10:
                interrupt.set()

        retry = Retrier(RetryPolicy(base=1.0, cap=2.0), interrupt, clock=clock, sleep=sleep)
        assert not retry.call(attempt, retry_on=(OSError,), event="x_failed")
        assert 1 < attempt.calls < 1000
        assert not retry.pause(retry.backoff(), "x_failed")

    def test_once_gives_up_after_one_failure(self) -> None:
        """With ``once`` a failure is reported at once, without waiting."""
        clock = FakeClock()
        attempt = Flaky(1)
        assert not retrier(clock).call(attempt, retry_on=(OSError,), event="x", once=True)
        assert attempt.calls == 1
        assert clock.slept == []

    def test_retry_after_lengthens_the_wait(self) -> None:
        """A server hint longer than the policy's delay is waited, capped by the policy."""
        clock = FakeClock()
        retry = retrier(clock)
        assert retry.pause(retry.backoff(), "bulk_retry", hint=5.0)
        assert clock.now == 5.0
        assert retry.pause(retry.backoff(), "bulk_retry", hint=60.0)
        assert clock.now == 5.0 + 8.0

    def test_long_waits_beat_the_heartbeat(self) -> None:
        """A wait is cut in slices of at most a second, with a heartbeat in each."""
        clock = FakeClock()
        beats: list[float] = []
        retry = Retrier(
            RetryPolicy(base=4.0, cap=4.0), clock=clock, random=lambda: 1.0, sleep=clock.sleep,
            heartbeat=lambda: beats.append(clock.now),
        )  # fmt: skip
        assert retry.pause(retry.backoff(), "x_failed")
        assert clock.slept == [1.0, 1.0, 1.0, 1.0]
        assert beats == [0.0, 1.0, 2.0, 3.0]

    def test_failures_are_logged_with_attempt_and_delay(self) -> None:
        """Every failure is one warning: the event name, the error, the attempt, the delay."""
        clock = FakeClock()
        with structlog.testing.capture_logs() as logs:
            retrier(clock).call(Flaky(2), retry_on=(OSError,), event="dead_letter_write_failed")
        assert [(e["event"], e["error"], e["attempt"], e["delay"]) for e in logs] == [
            ("dead_letter_write_failed", "disk full", 1, 1.0),
            ("dead_letter_write_failed", "disk full", 2, 2.0),
        ]
