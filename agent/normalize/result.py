"""What one input line becomes: a document, a skip, or a rejection with its reason.

A typed outcome instead of ``None`` or an exception, so every caller (the run loop, the
dead-letter writer, the ``normalize`` command) must say what it does with each kind, and
nothing slips through uncounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.stage import Stage

# A frozen dataclass's generated __init__ sets each field through object.__setattr__. These
# two are made for every line, so their __init__ sets the slots directly (the descriptors'
# own __set__, bound below): the same frozen, slotted dataclasses, built in half the time.


@dataclass(frozen=True, slots=True)
class Source:
    """Where a line came from; part of the derived id, so two hosts never collide."""

    path: str
    file_id: str
    offset: int
    host: str

    def __init__(self, path: str, file_id: str, offset: int, host: str) -> None:
        _set_path(self, path)
        _set_file_id(self, file_id)
        _set_offset(self, offset)
        _set_host(self, host)


@dataclass(frozen=True, slots=True)
class Normalized:
    """An audit record turned into its event document and its companion change documents."""

    event_id: str
    event: dict[str, Any]
    changes: list[tuple[str, dict[str, Any]]]

    def __init__(
        self, event_id: str, event: dict[str, Any], changes: list[tuple[str, dict[str, Any]]]
    ) -> None:
        _set_event_id(self, event_id)
        _set_event(self, event)
        _set_changes(self, changes)


_set_path, _set_file_id, _set_offset, _set_host = (
    Source.__dict__[name].__set__ for name in ("path", "file_id", "offset", "host")
)
_set_event_id, _set_event, _set_changes = (
    Normalized.__dict__[name].__set__ for name in ("event_id", "event", "changes")
)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Not an audit record (an ordinary service log line): counted, never shipped."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """Meant as an audit record but unusable; the reason names the field and the problem.

    ``stage`` says where: the line could not be decoded, or the record could not be used.
    """

    reason: str
    field: str | None = None
    stage: Stage = Stage.NORMALIZE


Outcome = Normalized | Skipped | Rejected
