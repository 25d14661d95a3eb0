"""Where reading starts in a file, and when a file is no longer the one being read.

These are the identity rules in one place: resume at a checkpoint only while the file still
fits it, continue a copy from its original's checkpoint, start anything else at 0, and treat
a file that shrank or changed its first line as truncated.

The rules read the registry and never write it: each decision is returned as a fact
(:mod:`agent.files.facts`) that the tailer puts in its stream for the checkpointer to apply.
"""

from __future__ import annotations

import os
from typing import Protocol

from agent.files._tracked import TrackedFile
from agent.files.facts import Copied, Fact, Opened, Reset
from agent.files.identity import FileKey, read_prefix
from agent.files.registry import FilePosition
from common.log import get_logger

log = get_logger(__name__)


class Positions(Protocol):
    """What the tailer may ask of the registry: reading only (``Registry`` fits)."""

    def get(self, key: FileKey, /) -> FilePosition | None: ...

    def find_fingerprint(self, fingerprint: str, /) -> FilePosition | None: ...


def identify(source: TrackedFile, positions: Positions, cap: int, generation: int) -> Fact | None:
    """Give a file its key once its first line is complete, pick its start offset, and say
    what happened; None while the first line is incomplete.

    A file restarted after a truncation (``fresh``) starts at 0 whatever the registry says:
    an entry under the same key describes the content that was cut away.
    """
    assert source.fd is not None
    head = read_prefix(source.fd, cap)
    if head is None:
        return None
    key = FileKey(source.device, source.inode, head.fingerprint)
    source.key = key
    source.generation = generation
    source.buf = bytearray()
    if source.fresh:
        source.fresh = False
        source.offset = 0
        return Reset(key, source.path, generation)
    known = positions.get(key)
    if known is not None:
        source.offset = _resume(source, key, known)
        if source.offset == 0 and known.acked > 0:
            return Reset(key, source.path, generation)
        return Opened(key, source.path, generation, source.offset)
    copied = positions.find_fingerprint(key.fingerprint)
    if copied is not None:
        fact = _continue_copy(source, key, copied, generation)
        if fact is not None:
            source.offset = fact.acked
            return fact
    source.offset = 0
    log.debug("file_identified", path=source.path, key=str(key), offset=0)
    return Opened(key, source.path, generation, 0)


def replaced(source: TrackedFile, shrank: bool, cap: int) -> str | None:
    """Why the file under ``source`` is no longer the content being read, or None.

    Shrinking is a truncation; a first line that changed means truncated and refilled
    (``copytruncate`` followed by new writes) even when the file is longer than before.
    """
    if shrank:
        return "shrank"
    assert source.fd is not None
    assert source.key is not None
    head = read_prefix(source.fd, cap)
    if head is None or head.fingerprint != source.key.fingerprint:
        return "first_line_changed"
    return None


def _resume(source: TrackedFile, key: FileKey, known: FilePosition) -> int:
    """The checkpoint of a known file, unless the file no longer fits it (then 0)."""
    acked = known.acked
    if acked > source.size:
        log.info("file_truncated", path=source.path, key=str(key), offset=acked,
                 size=source.size, reason="shorter_than_checkpoint")  # fmt: skip
    elif acked > 0 and not _line_boundary(source, acked):
        log.warning("checkpoint_mismatch", path=source.path, key=str(key), offset=acked)
    else:
        log.debug("file_resumed", path=source.path, key=str(key), offset=acked)
        return acked
    return 0


def _continue_copy(
    source: TrackedFile, key: FileKey, copied: FilePosition, generation: int
) -> Copied | None:
    """Continue a copy where its original's checkpoint is; the copy inherits that checkpoint.

    A copy still shorter than the checkpoint is being written (``copytruncate`` in progress):
    it is read from the checkpoint once it gets there. None when the copy does not fit.
    """
    start = copied.acked
    if 0 < start <= source.size and not _line_boundary(source, start):
        log.warning("copy_mismatch", path=source.path, key=str(key), original=copied.key)
        return None
    log.info("file_copy_detected", path=source.path, key=str(key), original=copied.key,
             original_path=copied.path, offset=start)  # fmt: skip
    return Copied(
        key, source.path, generation, copied.key, start, copied.sent, copied.chain,
        copied.pending,
    )  # fmt: skip


def _line_boundary(source: TrackedFile, offset: int) -> bool:
    """A checkpoint always follows a newline; anything else means other content."""
    assert source.fd is not None
    return os.pread(source.fd, 1, offset - 1) == b"\n"
