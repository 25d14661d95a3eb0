"""Where reading starts in a file, and when a file is no longer the one being read.

These are the identity rules in one place: resume at a checkpoint only while the file still
fits it, continue a copy from its original's checkpoint, start anything else at 0, and treat
a file that shrank or changed its first line as truncated.
"""

from __future__ import annotations

import os

from agent.files._source import Source
from agent.files.identity import FileKey, read_head
from agent.files.registry import FilePosition, Registry
from common.log import get_logger

log = get_logger(__name__)


def identify(source: Source, registry: Registry, cap: int) -> None:
    """Give a file its key once its first line is complete, and pick its start offset.

    A file restarted after a truncation (``fresh``) starts at 0 whatever the registry says:
    an entry under the same key describes the content that was cut away.
    """
    assert source.fd is not None
    head = read_head(source.fd, cap)
    if head is None:
        return
    key = FileKey(source.device, source.inode, head.fingerprint)
    source.key = key
    source.buf = bytearray()
    if source.fresh:
        source.fresh = False
        source.offset = 0
        if registry.get(key) is not None:
            registry.reset(key, source.path)
        return
    known = registry.get(key)
    if known is not None:
        source.offset = _resume(source, registry, key, known)
        return
    copied = registry.find_fingerprint(key.fingerprint)
    source.offset = _continue_copy(source, registry, key, copied) if copied is not None else 0
    log.debug("file_identified", path=source.path, key=str(key), offset=source.offset)


def replaced(source: Source, shrank: bool, cap: int) -> str | None:
    """Why the file under ``source`` is no longer the content being read, or None.

    Shrinking is a truncation; a first line that changed means truncated and refilled
    (``copytruncate`` followed by new writes) even when the file is longer than before.
    """
    if shrank:
        return "shrank"
    assert source.fd is not None
    assert source.key is not None
    head = read_head(source.fd, cap)
    if head is None or head.fingerprint != source.key.fingerprint:
        return "first_line_changed"
    return None


def _resume(source: Source, registry: Registry, key: FileKey, known: FilePosition) -> int:
    """The checkpoint of a known file, unless the file no longer fits it."""
    acked = known.acked
    if acked > source.size:
        log.info("file_truncated", path=source.path, key=str(key), offset=acked,
                 size=source.size, reason="shorter_than_checkpoint")  # fmt: skip
    elif acked > 0 and not _line_boundary(source, acked):
        log.warning("checkpoint_mismatch", path=source.path, key=str(key), offset=acked)
    else:
        log.debug("file_resumed", path=source.path, key=str(key), offset=acked)
        return acked
    registry.reset(key, source.path)
    return 0


def _continue_copy(source: Source, registry: Registry, key: FileKey, copied: FilePosition) -> int:
    """Continue a copy where its original's checkpoint is; the copy inherits that checkpoint.

    A copy still shorter than the checkpoint is being written (``copytruncate`` in progress):
    it is read from the checkpoint once it gets there.
    """
    start = copied.acked
    if 0 < start <= source.size and not _line_boundary(source, start):
        log.warning("copy_mismatch", path=source.path, key=str(key), original=copied.key)
        return 0
    registry.mark_sent(key, source.path, copied.sent)
    registry.ack(key, source.path, start)
    log.info("file_copy_detected", path=source.path, key=str(key), original=copied.key,
             original_path=copied.path, offset=start)  # fmt: skip
    return start


def _line_boundary(source: Source, offset: int) -> bool:
    """A checkpoint always follows a newline; anything else means other content."""
    assert source.fd is not None
    return os.pread(source.fd, 1, offset - 1) == b"\n"
