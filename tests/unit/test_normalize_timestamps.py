"""Event times: ISO 8601 with any offset or fraction, or epoch milliseconds, to UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.normalize.timestamps import MAX_MS, MIN_MS, TimeError, parse_time


class TestParseTime:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2026-11-25T09:14:03.120Z", "2026-11-25T09:14:03.120Z"),
            ("2026-11-25T10:02:00+01:00", "2026-11-25T09:02:00.000Z"),
            ("2026-11-25T10:02:00-05:30", "2026-11-25T15:32:00.000Z"),
            ("2026-11-25T10:02:00+0100", "2026-11-25T09:02:00.000Z"),
            ("2026-11-25T09:14:03.1Z", "2026-11-25T09:14:03.100Z"),
            ("2026-11-25T09:14:03.12Z", "2026-11-25T09:14:03.120Z"),
            ("2026-11-25T09:14:03.123456Z", "2026-11-25T09:14:03.123Z"),
            ("2026-11-25T09:14:03.123456789Z", "2026-11-25T09:14:03.123Z"),
            ("2026-11-25T09:14:03,5Z", "2026-11-25T09:14:03.500Z"),
            ("2026-11-25 09:14:03", "2026-11-25T09:14:03.000Z"),
            ("2026-11-25T09:14:03", "2026-11-25T09:14:03.000Z"),
            ("2026-11-25", "2026-11-25T00:00:00.000Z"),
            ("20261125T091403Z", "2026-11-25T09:14:03.000Z"),
            ("  2026-11-25T09:14:03Z ", "2026-11-25T09:14:03.000Z"),
        ],
    )
    def test_iso_8601(self, value: str, expected: str) -> None:
        """Any offset or fraction becomes UTC with milliseconds; no offset means UTC."""
        assert parse_time(value) == expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (1764062476000, "2025-11-25T09:21:16.000Z"),
            (1764062476123.9, "2025-11-25T09:21:16.123Z"),
            ("1764062476000", "2025-11-25T09:21:16.000Z"),
            (0, "1970-01-01T00:00:00.000Z"),
            (-1000, "1969-12-31T23:59:59.000Z"),
            (MIN_MS, "0001-01-01T00:00:00.000Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
        ],
    )
    def test_epoch_milliseconds(self, value: Any, expected: str) -> None:
        """Numbers (and numeric text) are milliseconds since the epoch, never seconds."""
        assert parse_time(value) == expected

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("not a date", "'not a date' is not an ISO 8601 time or epoch milliseconds"),
            ("2026-13-45", "month must be in 1..12"),
            ("2026-11-25T24:00:00Z", "hour must be in 0..23"),
            ("0000-01-01T00:00:00Z", "year 0 is out of range"),
            ("0001-01-01T00:30:00+01:00", "out of range in UTC"),
            (1e20, "1e+20 is out of range for epoch milliseconds"),
            (MAX_MS + 1, "out of range for epoch milliseconds"),
            (MIN_MS - 1, "out of range for epoch milliseconds"),
            (float("nan"), "out of range"),
            (float("inf"), "out of range"),
            ("NaN", "is not an ISO 8601 time"),
            ("1e400", "is not an ISO 8601 time"),
            (True, "True is not an ISO 8601 time"),
            ({"$date": 1}, "expected a time, got dict"),
            (["2026-11-25"], "expected a time, got list"),
            ("2026-11-25T09:14:03Z" * 10, "is not an ISO 8601 time"),
        ],
    )
    def test_unusable(self, value: Any, reason: str) -> None:
        """A value that is no time gives a reason naming the value and the problem."""
        with pytest.raises(TimeError, match=None) as caught:
            parse_time(value)
        assert reason in str(caught.value)


def _reference_epoch(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


class TestFormatting:
    @settings(max_examples=500, deadline=None)
    @given(st.integers(MIN_MS, MAX_MS))
    def test_epoch_milliseconds_everywhere_in_range(self, ms: int) -> None:
        """Every millisecond of years 1-9999 is spelled out in full, year padded to four."""
        assert parse_time(ms) == _reference_epoch(ms)

    @settings(max_examples=500, deadline=None)
    @given(
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.integers(-23 * 60 - 59, 23 * 60 + 59),
    )
    def test_offsets_everywhere_in_range(self, moment: datetime, minutes: int) -> None:
        """Any offset is converted to UTC; the fraction is cut (never rounded) to ms."""
        local = moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))
        utc = local.astimezone(UTC)
        expected = (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
        )
        assert parse_time(local.isoformat()) == expected
