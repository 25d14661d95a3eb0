"""Looking at one tracked file from outside: what changed on disk since the last look.

Functions of a :class:`TrackedFile` and the file system only, so the tailer keeps the file set
and the read loop while the rules for "grown, truncated, deleted, renamed, read out" are
here, each small enough to read at once. They log what they find; they never touch the
registry or the set of tracked files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.files._placement import replaced
from agent.files._tracked import Budget, Line, TrackedFile
from agent.files.identity import FileKey
from common.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Look:
    """What one look at an open file found: what the tailer must do about it."""

    rescan: bool = False  # renamed under us: a scan gives new lines the current name
    identify: bool = False  # no identity yet, or truncated: identify it (again)


def open_file(path: str, now: float) -> TrackedFile | None:
    """A regular file at ``path`` opened for reading, or None (``OSError`` if it cannot be
    opened at all)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    source = TrackedFile(path, fd, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, now)
    source.seen_end = st.st_size
    return source


def reopen(source: TrackedFile, now: float) -> None:
    """Open a file closed for inactivity again, if its name still leads to it."""
    try:
        fd = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != source.ident:
        os.close(fd)  # replaced between stat and open: the next scan sorts it out
        return
    source.fd = fd
    source.changed_at = now
    log.debug("file_reopened", path=source.path, key=name(source.key))


def look_again(source: TrackedFile, now: float, fingerprint_bytes: int) -> Look:
    """Growth, truncation, deletion, a first line completed; the source is updated."""
    if source.fd is None:
        return Look()
    st = os.fstat(source.fd)
    changed = (st.st_size, st.st_mtime_ns) != (source.size, source.mtime_ns)
    shrank = st.st_size < source.seen_end
    source.seen_end = max(source.seen_end, st.st_size)
    source.size, source.mtime_ns = st.st_size, st.st_mtime_ns
    rescan = False
    if changed:
        source.changed_at = now
        rescan = source.attached and moved(source)
    if st.st_nlink == 0 and not source.deleted:
        source.deleted = True
        log.info("file_deleted", path=source.path, key=name(source.key))
    if source.key is None:
        return Look(rescan, identify=True)
    if not changed:
        return Look(rescan)
    reason = replaced(source, shrank, fingerprint_bytes)
    if reason is None:
        return Look(rescan)
    log.info("file_truncated", path=source.path, key=str(source.key),
             offset=source.offset, size=st.st_size, reason=reason)  # fmt: skip
    source.restart(st.st_size)
    return Look(rescan, identify=True)


def read_out(source: TrackedFile) -> bool:
    """True when ``source`` has no complete line left that a read would return."""
    if source.carry:
        return False
    if source.fd is None:
        return not (source.attached and changed_while_closed(source))
    size = os.fstat(source.fd).st_size
    if source.key is None:
        return size == source.size  # no change since its first line was found incomplete
    return size <= source.read_end and b"\n" not in source.buf


def close_reason(source: TrackedFile, now: float, close_inactive: float) -> str | None:
    """Why a drained file should be closed now (deleted, inactive, renamed away), if so."""
    if source.fd is None or not source.drained():
        return None
    if source.deleted:
        return "deleted"
    if now - source.changed_at >= close_inactive:
        return "inactive" if source.attached else "renamed_away"
    return None


def per_path(
    sources: Iterable[TrackedFile], measure: Callable[[TrackedFile], int], *, zeros: bool = False
) -> dict[str, int]:
    """``measure`` summed per path (two files can share a path for a while: the old one
    renamed away and being drained, and the new one); paths at 0 only with ``zeros``."""
    result: dict[str, int] = {}
    for source in sources:
        amount = measure(source)
        if amount > 0 or zeros:
            result[source.path] = result.get(source.path, 0) + amount
    return result


def share_out(
    active: list[TrackedFile],
    budget: Budget,
    out: list[Line],
    take: Callable[[TrackedFile, int, Budget, list[Line]], bool],
) -> bool:
    """Round-robin over the files with something to read, an equal share of the lines left
    each round, until the budget is spent or nothing is left; whether some file has more."""
    while active and budget.left():
        share = max(1, budget.lines // len(active))
        before = len(out)
        active = [s for s in active if take(s, share, budget, out)]
        if len(out) == before:
            break  # only lines too big for what is left of the byte budget
    return bool(active)


def current_size(source: TrackedFile) -> int:
    if source.fd is None:
        return source.size
    return os.fstat(source.fd).st_size


def changed_while_closed(source: TrackedFile) -> bool:
    try:
        st = Path(source.path).stat()
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) != (source.size, source.mtime_ns)


def moved(source: TrackedFile) -> bool:
    """The file's name no longer leads to it (renamed or deleted)."""
    try:
        st = Path(source.path).stat()
    except OSError:
        return True
    return (st.st_dev, st.st_ino) != source.ident


def same_file(path: str, ident: tuple[int, int]) -> bool:
    """True when ``path`` still leads to ``ident``: another name found for a tracked file (a
    symlink to it, a hard link) is an alias, not a rotation, and the file keeps its name."""
    try:
        st = Path(path).stat()
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == ident


def name(key: FileKey | None) -> str | None:
    return str(key) if key is not None else None
