"""What one input line becomes: a document, a skip, or a rejection with its reason.

A typed outcome instead of ``None`` or an exception, so every caller (the run loop, the
dead-letter writer, the ``normalize`` command) must say what it does with each kind, and
nothing slips through uncounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Source:
    """Where a line came from; part of the derived id, so two hosts never collide."""

    path: str
    file_id: str
    offset: int
    host: str


@dataclass(frozen=True, slots=True)
class Normalized:
    """An audit record turned into its event document and its companion change documents."""

    event_id: str
    event: dict[str, Any]
    changes: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Skipped:
    """Not an audit record (an ordinary service log line): counted, never shipped."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """Meant as an audit record but unusable; the reason names the field and the problem."""

    reason: str
    field: str | None = None


Outcome = Normalized | Skipped | Rejected
