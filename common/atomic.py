"""Replacing a small state file so that a crash leaves the old or the new one, never a mix.

A temp file in the same directory, flushed and fsynced, renamed over the target, then the
directory fsynced so the rename itself survives a power cut. Reading one back: absent is a
first start, unreadable is an error that names the file.
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
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_state(path: Path, what: str, error: type[Exception]) -> bytes | None:
    """The state file's bytes, or ``None`` before its first save; ``error`` when unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
