"""Where reading starts in a file, and when a file is no longer the one being read.

These are the identity rules in one place: resume at a checkpoint only while the file still
fits it, continue a copy from its original's checkpoint (or from 0, in the original's
chain, when the original was found in this run and has no checkpoint yet), start anything
else at 0, and treat a file that shrank or changed its first line as truncated.

The rules read the registry and never write it: each decision is returned as a fact
(:mod:`agent.files.facts`) that the tailer puts in its stream for the checkpointer to apply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


# The identity found earlier in this run with the same first line and another inode, if
# any: the original of a copy the registry has not heard of yet (see ``identify``).
Sibling = Callable[[TrackedFile, FileKey], FileKey | None]


def identify(
    source: TrackedFile,
    positions: Positions,
    cap: int,
    generation: int,
    sibling: Sibling | None = None,
) -> Fact | None:
    """Give a file its key once its first line is complete, pick its start offset, and say
    what happened; None while the first line is incomplete.

    A file restarted after a truncation (``fresh``) starts at 0 whatever the registry says:
    an entry under the same key describes the content that was cut away.

    The registry hears of a file only when its first lines are sent, so a copy made just
    after the original was opened (``copytruncate`` right after a start) finds no entry.
    ``sibling`` then names the original as this run found it: the copy is read from 0 in
    the original's chain, so its lines get the values the original's lines got (a replay of
    them is a 409), rather than beginning a stream whose first lines the index already holds
    under the original's, and which ``verify`` would find missing.
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
    fact = _copy(source, key, positions, generation, sibling)
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


def _copy(
    source: TrackedFile,
    key: FileKey,
    positions: Positions,
    generation: int,
    sibling: Sibling | None,
) -> Copied | None:
    """The copy fact of a new key whose first line is known: from the registry, else from
    what this run found; None when it is no copy."""
    copied = positions.find_fingerprint(key.fingerprint)
    if copied is not None:
        return _continue_copy(source, key, copied, generation)
    original = sibling(source, key) if sibling is not None else None
    if original is None:
        return None
    log.info("file_copy_detected", path=source.path, key=str(key), original=str(original),
             original_path=None, offset=0, registered=False)  # fmt: skip
    return Copied(key, source.path, generation, str(original), 0, 0)


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


def may_copy(copy: TrackedFile, original: TrackedFile, cap: int, window: int = 1 << 16) -> bool:
    """Whether ``copy`` may be a copy of the open file ``original`` (same first line).

    While the original still holds the content it was identified by, the two must agree on
    their first bytes, as far as both reach (a window): a copy does, a file that merely
    begins with the same line soon does not. An original truncated since (shorter than what
    was read of it, or with another first line, noticed or not) cannot be compared: as for a
    copy found in the registry, the first line is all there is to go by.
    """
    assert copy.fd is not None
    assert original.fd is not None
    size = os.fstat(original.fd).st_size
    if replaced(original, size < original.offset, cap) is not None:
        return True
    size = min(size, os.fstat(copy.fd).st_size, window)
    return os.pread(copy.fd, size, 0) == os.pread(original.fd, size, 0)


def _line_boundary(source: TrackedFile, offset: int) -> bool:
    """A checkpoint always follows a newline; anything else means other content."""
    assert source.fd is not None
    return os.pread(source.fd, 1, offset - 1) == b"\n"
