"""Files followed while the agent runs: new content noticed, however it arrived.

Secrets and keys are replaced in place, renamed over, or (Kubernetes) swapped behind a
symlink; all three show as new content at the same path, while a file touched but unchanged
does not. The files are small, so comparing a digest of their content is cheap; looking at
most every ``interval`` seconds keeps it off hot paths.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class ContentWatch:
    """Which of ``files`` hold new content since the last look (not thread-safe: a caller
    shared across threads holds its own lock)."""

    def __init__(
        self,
        files: Sequence[Path],
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = list(files)
        self._interval = interval
        self._clock = clock
        self._seen = self._signatures()
        self._next_look = clock() + interval

    def due(self) -> bool:
        return self._clock() >= self._next_look

    def changed(self) -> list[Path]:
        """The files whose content changed since the last look; none before the interval."""
        now = self._clock()
        if now < self._next_look:
            return []
        self._next_look = now + self._interval
        signatures = self._signatures()
        changed = [
            path
            for path, old, new in zip(self.files, self._seen, signatures, strict=True)
            if old != new
        ]
        self._seen = signatures
        return changed

    def _signatures(self) -> list[bytes | None]:
        """A digest of each file's content (``None`` while it cannot be read)."""
        signatures: list[bytes | None] = []
        for path in self.files:
            try:
                signatures.append(hashlib.sha256(path.read_bytes()).digest())
            except OSError:
                signatures.append(None)
        return signatures
