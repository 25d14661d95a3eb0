"""The retry policy: exponential, capped, fully jittered, and never giving up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.retry import Backoff, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


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
        clock = FakeClock()
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
        backoff = Backoff(RetryPolicy(base=1.0), FakeClock(), lambda: 0.5)
        for _ in range(5):
            backoff.failed()
        backoff.succeeded()
        assert backoff.attempts == 0
        assert backoff.failed() == 0.5

    def test_server_hint_lengthens_but_is_capped(self) -> None:
        """A Retry-After longer than the jittered delay wins, up to the policy's cap."""
        backoff = Backoff(RetryPolicy(base=1.0, cap=10.0), FakeClock(), lambda: 0.1)
        assert backoff.failed(hint=3.0) == 3.0
        assert backoff.failed(hint=60.0) == 10.0
        assert backoff.failed(hint=0.01) == pytest.approx(0.4)
