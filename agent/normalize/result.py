"""What one input line becomes: a document, a skip, or a rejection with its reason.

A typed outcome instead of ``None`` or an exception, so every caller (the run loop, the
dead-letter writer, the ``normalize`` command) must say what it does with each kind, and
nothing slips through uncounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from common.stage import Stage
from common.value import Value

# These two are made for every line: plain value classes (common.value), compiled with the
# rest of the per-line path, rather than frozen dataclasses, whose generated __init__ sets
# each field through object.__setattr__. Never changed once made all the same.


class Source(Value):
    """Where a line came from; part of the derived id, so two hosts never collide."""

    __slots__ = ("file_id", "host", "offset", "path")
    FIELDS: ClassVar[tuple[str, ...]] = ("path", "file_id", "offset", "host")

    def __init__(self, path: str, file_id: str, offset: int, host: str) -> None:
        self.path = path
        self.file_id = file_id
        self.offset = offset
        self.host = host

    def __hash__(self) -> int:
        return hash(self.values())


class Normalized(Value):
    """An audit record turned into its event document and its companion change documents."""

    __slots__ = ("changes", "event", "event_id")
    FIELDS: ClassVar[tuple[str, ...]] = ("event_id", "event", "changes")

    def __init__(
        self, event_id: str, event: dict[str, Any], changes: list[tuple[str, dict[str, Any]]]
    ) -> None:
        self.event_id = event_id
        self.event = event
        self.changes = changes


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
