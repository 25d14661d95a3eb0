"""Time as the documents, dead letters and checkpoints write it: UTC, milliseconds, a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(moment: datetime) -> str:
    """``2026-01-02T03:04:05.678Z``: ISO 8601 in UTC with milliseconds (an aware moment)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    """The current moment, as :func:`utc_iso` writes it."""
    return utc_iso(datetime.now(UTC))
