"""What the tailer saw happen to a file, reported in the stream of lines it produces.

The tailer decides where reading starts (it reads the registry) but never writes it: it
states facts, in order with the lines, and the checkpointer (``agent.acks``), the registry's
only writer, applies them when it reaches them (Filebeat's cursor updates travel with the
events the same way). So a checkpoint changes in one place, on one thread, in stream order.

Every identification of a file (a new file, the same file after a truncation) takes a new
**generation**, a number that only grows; each :class:`~agent.files.Line` carries the
generation it was read in. An acknowledgement for a line of an older generation than the
file's current one is dropped by comparing the two numbers: nothing is inferred from offsets
going backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.files.identity import FileKey


@dataclass(frozen=True, slots=True)
class Opened:
    """A file identity is read from ``offset`` on (its checkpoint, or 0 for a new file)."""

    key: FileKey
    path: str
    generation: int
    offset: int


@dataclass(frozen=True, slots=True)
class Reset:
    """The identity starts over at 0: truncated in place with the same first line, or its
    checkpoint no longer fits the file. Its checkpoint goes back to 0."""

    key: FileKey
    path: str
    generation: int


@dataclass(frozen=True, slots=True)
class Copied:
    """A copy (``copytruncate``, a restore) continues where its original's checkpoint is,
    and inherits that checkpoint: ``acked`` and the replay window up to ``sent``."""

    key: FileKey
    path: str
    generation: int
    original: str
    acked: int
    sent: int
    # The chain head at ``acked`` taken with that offset (opaque here, see agent.evidence):
    # the copy's lines from ``acked`` continue that chain, even once the original has moved
    # on, so lines the original sent and a crash left unacknowledged get the same values.
    chain: dict[str, Any] | None = None
    pending: dict[str, Any] | None = None  # the chain head at ``sent``, likewise


@dataclass(frozen=True, slots=True)
class Moved:
    """The identity now lives under another name (renamed)."""

    key: FileKey
    path: str


@dataclass(frozen=True, slots=True)
class Gone:
    """The file was deleted or renamed away and, read to its end, is no longer tracked."""

    key: FileKey
    path: str


Fact = Opened | Reset | Copied | Moved | Gone
