"""Durable state files, the one toolkit: replace atomically, append durably, read back.

- :func:`write_atomically` replaces a small state file (the registry) so that a crash leaves
  the old or the new one, never a mix: a temp file in the same directory, flushed and
  fsynced, renamed over the target, then the directory fsynced so the rename itself
  survives a power cut.
- :func:`append_line` appends one NDJSON line (the local copy of the signed checkpoints)
  and fsyncs it, on a line of its own even after a line torn by a crash; a file it creates
  has its directory entry fsynced too (:func:`fsync_directory`, which the dead-letter
  file, which keeps its file open between appends, uses the same way).
- :func:`read_state`: absent is a first start, unreadable is an error that names the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temp).unlink()
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed file's name durable, not just its bytes."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` (without its newline) and fsync; a new file's name is fsynced too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with path.open("a+b") as handle:
        handle.seek(0, os.SEEK_END)
        torn = False
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
        handle.write((b"\n" if torn else b"") + line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_directory(path.parent)


def read_state(path: Path, what: str, error: type[Exception]) -> bytes | None:
    """The state file's bytes, or ``None`` before its first save; ``error`` when unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
