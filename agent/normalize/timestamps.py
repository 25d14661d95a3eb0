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
from datetime import UTC, datetime, timedelta
from typing import Any, Final

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# datetime's own range, years 1 to 9999, in epoch milliseconds.
MIN_MS: Final = -62_135_596_800_000
MAX_MS: Final = 253_402_300_799_999
_NUMERIC = re.compile(r"-?\d{1,20}(?:\.\d+)?")
_MAX_TEXT: Final = 64


class TimeError(ValueError):
    """The value is not a usable time; the message completes "field 'x': ..."."""


def format_utc(moment: datetime) -> str:
    # isoformat pads the year to four digits and cuts (never rounds) to milliseconds; the UTC
    # offset it ends with, "+00:00", becomes "Z".
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def from_epoch_ms(ms: int | float) -> str:
    # ``int | float``, not ``float``: compiled, a ``float`` parameter converts an int to a
    # float on the way in, and the message below would then show 9.2e+18 for 2**63.
    if not math.isfinite(ms) or not MIN_MS <= ms <= MAX_MS:
        raise TimeError(f"{_show(ms)} is out of range for epoch milliseconds (years 1-9999)")
    seconds, millis = divmod(math.floor(ms), 1000)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment.isoformat()[:19]}.{millis:03d}Z"  # YYYY-MM-DDTHH:MM:SS, then .mmmZ


def parse_time(value: Any) -> str:
    """The UTC ISO 8601 form of ``value``; raises TimeError with the reason."""
    if isinstance(value, bool):
        raise TimeError(f"{_show(value)} is not an ISO 8601 time or epoch milliseconds")
    if isinstance(value, int | float):
        return from_epoch_ms(value)
    if not isinstance(value, str):
        raise TimeError(f"expected a time, got {type(value).__name__}")
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
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return format_utc(moment)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 falls before year 1 in UTC
        raise TimeError(f"{_show(value)} is out of range in UTC (years 1-9999)") from None


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
