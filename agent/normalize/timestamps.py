"""Event times: ISO 8601 with any offset and fraction, or epoch milliseconds, to UTC.

Output is always ``YYYY-MM-DDTHH:MM:SS.mmmZ``: Elasticsearch's ``date`` keeps milliseconds,
and one fixed shape makes the canonical hash and string comparisons stable. A time without
an offset is taken as UTC (services log in UTC; guessing a local zone would be worse). A
bare number is milliseconds, never seconds: pino writes milliseconds, and a guess between
the two would silently misplace events by decades.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from typing import Any, Final

_EPOCH_DAY: Final = date(1970, 1, 1)
_EPOCH_ORDINAL: Final = 719_163  # date(1970, 1, 1).toordinal()
# datetime's own range, years 1 to 9999, in epoch milliseconds.
MIN_MS: Final = -62_135_596_800_000
MAX_MS: Final = 253_402_300_799_999
_DAY_MS: Final = 86_400_000
_NUMERIC = re.compile(r"-?\d{1,20}(?:\.\d+)?")
_MAX_TEXT: Final = 64
_TWO: Final = tuple(f"{n:02d}" for n in range(100))
_THREE: Final = tuple(f"{n:03d}" for n in range(1000))
_DATES_KEPT: Final = 4096
# Day number since the epoch -> "YYYY-MM-DDT". Events arrive in time order, so one day's
# text serves thousands of them; bounded, cleared when full.
_dates: dict[int, str] = {}


class TimeError(ValueError):
    """The value is not a usable time; the message completes "field 'x': ..."."""


def from_epoch_ms(ms: int | float) -> str:
    # ``int | float``, not ``float``: compiled, a ``float`` parameter converts an int to a
    # float on the way in, and the message below would then show 9.2e+18 for 2**63.
    if type(ms) is int:
        if not MIN_MS <= ms <= MAX_MS:
            raise TimeError(f"{_show(ms)} is out of range for epoch milliseconds (years 1-9999)")
        return _ms_text(ms)
    if not math.isfinite(ms) or not MIN_MS <= ms <= MAX_MS:
        raise TimeError(f"{_show(ms)} is out of range for epoch milliseconds (years 1-9999)")
    return _ms_text(math.floor(ms))


def _ms_text(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for whole epoch milliseconds within years 1-9999.

    Integer arithmetic and tables instead of a datetime, a timedelta and isoformat per
    event: only the date part comes from ``date``, once per day (see ``_dates``)."""
    days = ms // _DAY_MS
    rest = ms - days * _DAY_MS
    day = _dates.get(days)
    if day is None:
        day = _day_text(days)
    seconds = rest // 1000
    minutes = seconds // 60
    hour = minutes // 60
    return (
        f"{day}{_TWO[hour]}:{_TWO[minutes - hour * 60]}:{_TWO[seconds - minutes * 60]}"
        f".{_THREE[rest - seconds * 1000]}Z"
    )


def _day_text(days: int) -> str:
    if len(_dates) >= _DATES_KEPT:
        _dates.clear()
    text = (_EPOCH_DAY + timedelta(days=days)).isoformat() + "T"
    _dates[days] = text
    return text


def _utc_text(moment: datetime) -> str | None:
    """The moment in UTC as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (no offset: taken as UTC), cut
    (never rounded) to milliseconds; None when that falls outside years 1-9999.

    Arithmetic on the moment's fields instead of ``astimezone`` and ``isoformat``."""
    seconds = (
        (moment.toordinal() - _EPOCH_ORDINAL) * 86_400
        + moment.hour * 3600
        + moment.minute * 60
        + moment.second
    )
    micros = seconds * 1_000_000 + moment.microsecond
    offset = moment.utcoffset()
    if offset is not None:
        micros -= (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
    ms = micros // 1000
    return _ms_text(ms) if MIN_MS <= ms <= MAX_MS else None


def parse_time(value: Any) -> str:
    """The UTC ISO 8601 form of ``value``; raises TimeError with the reason."""
    if type(value) is str:  # the common case first; the checks below give the same answer
        return _parse_text(value)
    if isinstance(value, bool):
        raise TimeError(f"{_show(value)} is not an ISO 8601 time or epoch milliseconds")
    if isinstance(value, int) or isinstance(value, float):  # noqa: SIM101 (no union built)
        return from_epoch_ms(value)
    if not isinstance(value, str):
        raise TimeError(f"expected a time, got {type(value).__name__}")
    return _parse_text(value)


def _parse_text(value: str) -> str:
    text = value.strip()
    if len(text) == 24 and text[23] == "Z" and text[19] == "." and text[10] == "T":
        # Already the output shape (the common case): validate, keep the text.
        try:
            datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text
    if _NUMERIC.fullmatch(text):
        return from_epoch_ms(float(text))
    if len(text) > _MAX_TEXT:
        raise TimeError(f"{_show(value)} is not an ISO 8601 time or epoch milliseconds")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        detail = "" if str(exc).startswith("Invalid isoformat") else f" ({exc})"
        raise TimeError(
            f"{_show(value)} is not an ISO 8601 time or epoch milliseconds{detail}"
        ) from None
    utc = _utc_text(moment)
    if utc is None:  # e.g. 0001-01-01T00:00:00+01:00 falls before year 1 in UTC
        raise TimeError(f"{_show(value)} is out of range in UTC (years 1-9999)")
    return utc


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
