"""One agent per state directory: an exclusive lock held for the life of the process.

Two agents sharing a registry would each read, ship and checkpoint the same files; their
replay windows would not know about each other's requests, and a data stream rollover
between them turns the overlap into duplicates. So ``run`` takes ``flock(LOCK_EX)`` on
``STATE_DIR/agent.lock`` before it reads anything, and a second agent exits at once naming
the holder's pid. The kernel releases the lock when the holder dies, however it dies (even
``kill -9``), so a stale lock file never blocks a restart. The file is never deleted:
deleting it while another process waits on it would let two holders exist.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "agent.lock"


class StateLockError(Exception):
    """The state directory is in use by another agent (or the lock cannot be taken)."""


class StateLock:
    """Holds the lock from :meth:`acquire` until :meth:`release` or the process ends."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateLockError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StateLockError(
                f"state dir {self.path.parent} is in use by another agent (pid {holder}); "
                "give each agent its own --state-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateLockError(f"cannot lock {self.path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the lock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
