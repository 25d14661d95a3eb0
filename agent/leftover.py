"""What an interrupted ``run --once`` leaves for the next run, counted in lines.

After the final checkpoint is written, every complete line past a file's acknowledged
offset will be read again at the next start: that is the honest number of lines the
interrupted backfill did not finish (read and unsettled, or never read). Files are matched
as discovery matches them; a file with no checkpoint counts from its start. Counting reads
the rest of each file in fixed-size chunks, so memory stays flat whatever the backlog.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from agent.files import FileKey, FilePosition
from agent.files.discover import expand, inside, real_dirs

CHUNK = 1 << 20


def lines_left(
    patterns: Sequence[str], positions: Iterable[FilePosition], exclude: Sequence[str | Path] = ()
) -> int:
    """Complete lines after each matched file's checkpoint (0 for a file fully acknowledged)."""
    acked: dict[tuple[int, int], int] = {}
    for position in positions:
        try:
            key = FileKey.parse(position.key)
        except ValueError:
            continue
        ident = (key.device, key.inode)
        acked[ident] = max(acked.get(ident, 0), position.acked)
    total = 0
    own = real_dirs(exclude)
    seen: set[tuple[int, int]] = set()
    for path in expand(patterns):
        if inside(path, own):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            total += count_newlines(fd, acked.get(ident, 0))
        except OSError:
            continue
        finally:
            os.close(fd)
    return total


def count_newlines(fd: int, offset: int) -> int:
    """Newlines from ``offset`` to the end of the file, read a chunk at a time."""
    count = 0
    while chunk := os.pread(fd, CHUNK, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count
