"""The tailer: complete lines from every matched file, by byte offset, across rotations.

Files are tracked by device + inode while open and named by :class:`FileKey` (which adds
the first line's fingerprint) towards the registry. Where a file starts:

- a key in the registry resumes at its ``acked`` offset (checked against the file: shorter
  than the offset, or no newline just before it, means truncated while stopped: offset 0);
- a new key whose fingerprint is in the registry is a copy (``copytruncate``, a restore, a
  renumbered device): it continues from that entry, which it inherits;
- a new key whose first line this run already found on another inode, not yet in the
  registry (copied right after the original was opened), is a copy read from 0;
- anything else starts at 0.

While reading, a file that shrank or whose first line changed was truncated (in place or by
``copytruncate``): it starts again at 0 as the identity its new first line gives it. A file
renamed or deleted keeps being read through its open descriptor until drained.

The tailer reads the registry and never writes it. What it sees (a file opened, reset,
copied, moved, gone) it reports as facts (:mod:`agent.files.facts`) in the stream
:meth:`Tailer.read` returns, in order with the lines; each identification takes a new
generation, carried by every line read under it.

All file state lives on the reader thread (every public method but ``start``/``stop`` is
called from there); watchdog and the rescan thread only set events, and a lock makes
``stop`` safe against a concurrent ``read``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.files import _inspect
from agent.files._inspect import name
from agent.files._placement import Positions, identify, may_copy
from agent.files._tracked import DEFAULT_LINE_MAX, Budget, Line, TrackedFile
from agent.files.discover import Discovery
from agent.files.facts import Fact, Gone, Moved
from agent.files.identity import FileKey
from common.log import get_logger

__all__ = ["Line", "Positions", "Tailer"]

log = get_logger(__name__)

_Step = Callable[[TrackedFile, float], None]

IDENTIFIED_KEPT = 4096  # first lines remembered per run for finding copies (oldest go first)


class Tailer:
    """Reads complete lines from the files matching ``patterns``, fairly and non-blocking."""

    def __init__(
        self,
        patterns: Sequence[str],
        positions: Positions,
        *,
        fingerprint_bytes: int = 1024,
        rescan_interval: float = 10.0,
        close_inactive: float = 300.0,
        read_chunk: int = 1 << 20,
        exclude: Sequence[str | Path] = (),
        line_max: int = DEFAULT_LINE_MAX,
    ) -> None:
        if not patterns:
            raise ValueError("at least one path pattern is needed")
        if fingerprint_bytes < 1 or read_chunk < 1 or close_inactive <= 0:
            raise ValueError("fingerprint_bytes, read_chunk and close_inactive must be positive")
        self.positions = positions
        self.fingerprint_bytes = fingerprint_bytes
        self.rescan_interval = rescan_interval
        self.close_inactive = close_inactive
        self.read_chunk = read_chunk
        self.line_max = line_max
        self._discovery = Discovery(
            patterns, rescan_interval=rescan_interval, on_change=self._on_change, exclude=exclude
        )
        self.patterns = self._discovery.patterns
        self._files: dict[tuple[int, int], TrackedFile] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._rescan = threading.Event()
        self._rescan.set()
        self._last_scan = float("-inf")
        self._more = False
        self._turn = 0
        self._open_failed: set[str] = set()
        self._facts: list[Fact] = []
        self._generation = 0
        # first line -> the first identity found with it in this run (see ``_sibling``)
        self._identified: dict[str, FileKey] = {}
        self._started = False
        self._stopped = False

    # --- lifecycle

    def start(self) -> None:
        """Find the files present now, then watch for changes; a second call does nothing."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
            self._scan(time.monotonic())
        self._discovery.start()

    def stop(self) -> None:
        """Stop watching and close every file; ``read`` returns nothing afterwards."""
        self._discovery.stop()
        with self._lock:
            self._stopped = True
            for source in self._files.values():
                source.close()
            self._files.clear()
        self._wake.set()

    @property
    def watched_directories(self) -> list[str]:
        return self._discovery.watched

    # --- the reader thread's API

    def read(self, max_lines: int, max_bytes: int) -> list[Line | Fact]:
        """Up to ``max_lines`` complete lines (about ``max_bytes`` of data), round-robin,
        with the facts seen meanwhile in their place (they count against neither bound)."""
        out: list[Line] = []
        if max_lines <= 0 or max_bytes <= 0:
            return []
        with self._lock:
            if self._stopped:
                return []
            now = time.monotonic()
            sources = self._prepare(now)
            seen, self._facts = self._facts, []
            budget = Budget(max_lines, max_bytes)
            active = [s for s in sources if s.carry or (s.fd is not None and not s.drained())]
            self._more = _inspect.share_out(active, budget, out, self._take)
            for source in sources:
                self._guard(source, self._after_read, now)
            after, self._facts = self._facts, []
        return [*seen, *out, *after]

    def wait(self, timeout: float) -> None:
        """Sleep until a watched directory reports a change, or ``timeout`` seconds pass."""
        if self._more:
            return
        self._wake.wait(timeout)
        self._wake.clear()

    def lag(self) -> dict[str, int]:
        """Per path, bytes on disk not yet returned as lines."""
        with self._lock:
            return _inspect.per_path(
                self._files.values(),
                lambda s: max(0, _inspect.current_size(s) - s.offset),
                zeros=True,
            )

    def idle(self) -> bool:
        """True when every known file has been read to its last complete line."""
        with self._lock:
            if self._stopped:
                return True
            if self._rescan.is_set():
                return False  # files may have appeared that no read has looked at yet
            return all(_inspect.read_out(source) for source in self._files.values())

    def pending_partial(self) -> dict[str, int]:
        """Per path, bytes of a last line still waiting for its newline."""
        with self._lock:
            return _inspect.per_path(self._files.values(), TrackedFile.partial)

    # --- discovery

    def _prepare(self, now: float) -> list[TrackedFile]:
        """Scan when due, look at every file; a file found renamed asks for one more scan."""
        for _ in range(2):
            if self._rescan.is_set() or now - self._last_scan >= self.rescan_interval:
                self._scan(now)
            for source in list(self._files.values()):
                self._guard(source, self._refresh, now)
            if not self._rescan.is_set():
                break
        sources = list(self._files.values())
        self._turn = (self._turn + 1) % max(1, len(sources))
        return sources[self._turn :] + sources[: self._turn]

    def _on_change(self, structural: bool) -> None:
        if structural:
            self._rescan.set()
        self._wake.set()

    def _scan(self, now: float) -> None:
        """Match the patterns; track new files, note renames, re-open changed closed files."""
        self._rescan.clear()
        self._last_scan = now
        seen: set[tuple[int, int]] = set()
        for path in self._discovery.scan():
            try:
                st = Path(path).stat()
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue  # a second hard link to a file already tracked
            seen.add(ident)
            source = self._files.get(ident)
            if source is None:
                self._open(path, now)
                continue
            if source.path != path and not _inspect.same_file(source.path, ident):
                log.info("file_rotated", path=source.path, new_path=path, key=name(source.key))
                source.path = path
                if source.key is not None:
                    self._facts.append(Moved(source.key, path))
            source.attached = True
            if source.fd is None and (st.st_size, st.st_mtime_ns) != (
                source.size,
                source.mtime_ns,
            ):
                _inspect.reopen(source, now)
        for ident, source in list(self._files.items()):
            if ident in seen:
                continue
            if source.attached:
                source.attached = False
                log.info("file_rotated", path=source.path, new_path=None, key=name(source.key))
            if source.fd is None:
                del self._files[ident]
                self._gone(source)

    def _open(self, path: str, now: float) -> None:
        try:
            source = _inspect.open_file(path, now)
        except OSError as exc:
            if path not in self._open_failed:
                self._open_failed.add(path)
                log.warning("file_open_failed", path=path, error=str(exc))
            return
        self._open_failed.discard(path)
        if source is None:
            return
        if source.ident in self._files:
            source.close()
            return
        self._files[source.ident] = source
        log.debug("file_opened", path=path, size=source.size)
        self._guard(source, lambda s, _now: self._identify(s), now)

    # --- per file, each step guarded so one failing file never stops the others

    def _guard(self, source: TrackedFile, step: _Step, now: float) -> None:
        try:
            step(source, now)
        except OSError as exc:
            log.warning("file_read_failed", path=source.path, error=str(exc))
            source.close()
            self._files.pop(source.ident, None)

    def _refresh(self, source: TrackedFile, now: float) -> None:
        """Look at the file again (:func:`_inspect.look_again`) and act on what changed."""
        look = _inspect.look_again(source, now, self.fingerprint_bytes)
        if look.rescan:
            self._rescan.set()  # so new lines carry the file's current name
        if look.identify:
            self._identify(source)

    def _identify(self, source: TrackedFile) -> None:
        fact = identify(
            source, self.positions, self.fingerprint_bytes, self._generation + 1, self._sibling
        )
        if fact is not None:
            self._generation += 1
            self._facts.append(fact)
            if source.key is not None and source.key.fingerprint not in self._identified:
                if len(self._identified) >= IDENTIFIED_KEPT:
                    del self._identified[next(iter(self._identified))]
                self._identified[source.key.fingerprint] = source.key

    def _sibling(self, source: TrackedFile, key: FileKey) -> FileKey | None:
        """The file this run found first with ``key``'s first line, on another inode: the
        original of a copy (see ``identify``), if the original still open agrees
        (:func:`may_copy`). Closed, or identified anew since (truncated), its first line is
        all there is to go by, the same rule as for a copy found in the registry."""
        earlier = self._identified.get(key.fingerprint)
        if earlier is None or (earlier.device, earlier.inode) == source.ident:
            return None
        original = self._files.get((earlier.device, earlier.inode))
        if original is None or original.key != earlier or original.fd is None:
            return earlier
        return earlier if may_copy(source, original, self.fingerprint_bytes) else None

    def _gone(self, source: TrackedFile) -> None:
        if source.key is not None:
            self._facts.append(Gone(source.key, source.path))

    def _take(self, source: TrackedFile, share: int, budget: Budget, out: list[Line]) -> bool:
        more = [False]

        def take(s: TrackedFile, _now: float) -> None:
            more[0] = s.take(min(share, budget.lines), budget, out, self.read_chunk, self.line_max)

        self._guard(source, take, 0.0)  # a file that fails is dropped: nothing more from it
        return more[0]

    def _after_read(self, source: TrackedFile, now: float) -> None:
        """Close what is drained and no longer needed; keep per-file memory small."""
        source.trim()
        reason = _inspect.close_reason(source, now, self.close_inactive)
        if reason is not None:
            self._close(source, reason)

    def _close(self, source: TrackedFile, reason: str) -> None:
        partial = source.partial()
        if partial and (source.deleted or not source.attached):
            log.warning("partial_line_abandoned", path=source.path, bytes=partial, reason=reason)
        log.debug("file_closed", path=source.path, key=name(source.key), reason=reason)
        source.close()
        if source.deleted or not source.attached:
            self._files.pop(source.ident, None)
            self._gone(source)
