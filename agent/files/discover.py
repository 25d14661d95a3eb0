"""Discovery: which files match the glob patterns, and a prompt when something changes.

Watchdog (inotify on Linux) reports changes in the watched directories within milliseconds;
a periodic rescan is the safety net for what it cannot see: filesystems without
notifications, an exhausted watch limit, and directories that do not exist yet (they are
watched from the first rescan that finds them, and re-watched if deleted and recreated).

The agent's own directories (state and dead letters) are never matched, whatever the globs
say: reading its own registry and dead-letter files would feed the dead-letter file with
itself without end. A glob that covers them gets one warning, and their changes do not wake
the reader.

Discovery only signals; it never touches the tailer's files. The tailer runs the glob itself
on its reader thread when signalled, so all per-file state stays on one thread.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from common.log import get_logger

log = get_logger(__name__)

_MAGIC = re.compile(r"[*?[]")
# Reading a file raises these; reacting to them would wake the reader for its own reads.
_IGNORED = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})
# These change which files exist under which names, so the glob must run again.
_STRUCTURAL = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED})


class _StopRaceFilter(logging.Filter):
    """Hide watchdog's error for an event read while the observer stops: harmless noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRaceFilter())

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".br")

OnChange = Callable[[bool], None]
"""Called with ``True`` when files may have appeared, moved or gone, ``False`` on writes."""


def normalize_patterns(patterns: Sequence[str]) -> list[str]:
    """Absolute patterns (``~`` expanded), duplicates removed, order kept."""
    seen: dict[str, None] = {}
    for pattern in patterns:
        if not pattern.strip():
            raise ValueError("an empty path pattern matches nothing")
        seen[str(Path(pattern).expanduser().absolute())] = None
    return list(seen)


def expand(patterns: Sequence[str]) -> list[str]:
    """Regular files matching any pattern (``**`` spans directories), each path once.

    Compressed files are skipped: ``audit.log*`` also matches what logrotate's ``compress``
    leaves behind (``audit.log.2.gz``), whose lines were read before it was compressed.
    """
    found: dict[str, None] = {}
    for pattern in patterns:
        # Path.glob takes no absolute patterns; glob.glob does, with ** across directories.
        for path in sorted(glob.glob(pattern, recursive=True)):  # noqa: PTH207
            if path in found or path.endswith(COMPRESSED_SUFFIXES):
                continue
            if Path(path).is_file():
                found[path] = None
    return list(found)


def watch_root(pattern: str) -> tuple[str, bool]:
    """The directory to watch for ``pattern`` and whether the watch must be recursive.

    That is the longest directory prefix without glob characters; recursive when a
    directory part of the pattern has a wildcard (``/logs/*/audit.log``, ``/logs/**/*.log``).
    """
    parent = Path(pattern).parent
    literal = Path(parent.anchor)
    for part in parent.parts[1:]:
        if _MAGIC.search(part):
            return str(literal), True
        literal = literal / part
    return str(parent), False


def real_dirs(directories: Sequence[str | Path]) -> list[str]:
    """Directories as absolute real paths (symlinks resolved), for :func:`inside`."""
    return [os.path.realpath(Path(d).expanduser().absolute()) for d in directories]


def own_output_files() -> list[str]:
    """The regular files this process's stdout and stderr go to (``2>>/logs/agent.log``).

    A glob that covers one would feed the agent its own log: every line not an audit
    record, each one making the agent log again. They are excluded like the state dir.
    """
    found = []
    for fd in (1, 2):
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            path = str(Path(f"/proc/self/fd/{fd}").readlink())
        except OSError:
            continue  # closed, or no /proc: nothing to exclude
        if path.startswith(os.sep) and not path.endswith(" (deleted)"):
            found.append(path)
    return found


def inside(path: str, directories: Sequence[str]) -> bool:
    """True when ``path`` (resolved) is one of ``directories`` (real paths) or below one."""
    real = os.path.realpath(path)
    return any(real == d or real.startswith(d.rstrip(os.sep) + os.sep) for d in directories)


class _Handler(FileSystemEventHandler):
    def __init__(self, on_change: OnChange, exclude: Sequence[str]) -> None:
        self._on_change = on_change
        self._exclude = exclude

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED:
            return
        if self._exclude and inside(os.fsdecode(event.src_path), self._exclude):
            return  # the agent's own registry and dead-letter writes
        self._on_change(event.event_type in _STRUCTURAL)


class Discovery:
    """Watches the directories behind the patterns and rescans periodically."""

    def __init__(
        self,
        patterns: Sequence[str],
        *,
        rescan_interval: float,
        on_change: OnChange,
        exclude: Sequence[str | Path] = (),
    ) -> None:
        if rescan_interval <= 0:
            raise ValueError("rescan_interval must be positive")
        self.patterns = normalize_patterns(patterns)
        self.rescan_interval = rescan_interval
        self.exclude = real_dirs(exclude)
        self._warned: set[str] = set()
        self._on_change = on_change
        self._handler = _Handler(on_change, self.exclude)
        self._roots = self._roots_of(self.patterns)
        self._observer: BaseObserver | None = None
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._failed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def scan(self) -> list[str]:
        """Matching files, less the agent's own (one warning per own directory covered)."""
        found = expand(self.patterns)
        if not self.exclude:
            return found
        kept = []
        for path in found:
            if not inside(path, self.exclude):
                kept.append(path)
                continue
            own = next(d for d in self.exclude if inside(path, [d]))
            if own not in self._warned:
                self._warned.add(own)
                where = {"file": own} if Path(own).is_file() else {"directory": own}
                log.warning("own_files_excluded", **where, example=path,
                            reason="a --path glob covers the agent's own files (its state, "
                            "dead letters or log output); they are never read")  # fmt: skip
        return kept

    @property
    def watched(self) -> list[str]:
        """Directories under a live watch now (for diagnostics and tests)."""
        with self._lock:
            return sorted(self._watches)

    def start(self) -> None:
        """Start the observer and the rescan thread; a second call does nothing."""
        with self._lock:
            if self._thread is not None:
                return
            try:
                observer = Observer()
                observer.daemon = True
                observer.start()
                self._observer = observer
            except OSError as exc:
                log.warning(
                    "watch_unavailable", error=str(exc), rescan_interval=self.rescan_interval
                )
            self._ensure_watches()
            self._thread = threading.Thread(
                target=self._rescan_loop, name="appmixer-audit-rescan", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            observer, self._observer = self._observer, None
            self._watches.clear()
        if observer is not None:
            observer.stop()
            observer.join()

    def _rescan_loop(self) -> None:
        while not self._stop.wait(self.rescan_interval):
            with self._lock:
                self._ensure_watches()
            self._on_change(True)

    def _ensure_watches(self) -> None:
        """Watch every existing root; drop watches whose directory went or was replaced."""
        if self._observer is None:
            return
        for root, recursive in self._roots.items():
            try:
                st = Path(root).stat()
                ident = (st.st_dev, st.st_ino)
            except OSError:
                ident = None
            current = self._watches.get(root)
            if current is not None and current[1] == ident:
                continue
            if current is not None:
                self._unschedule(current[0])
                del self._watches[root]
            if ident is None:
                continue
            try:
                watch = self._observer.schedule(self._handler, root, recursive=recursive)
            except OSError as exc:
                if root not in self._failed:
                    log.warning("watch_failed", directory=root, error=str(exc))
                    self._failed.add(root)
                continue
            self._failed.discard(root)
            self._watches[root] = (watch, ident)
            log.debug("watch_added", directory=root, recursive=recursive)
            self._on_change(True)  # files may have appeared before the watch existed

    def _unschedule(self, watch: ObservedWatch) -> None:
        if self._observer is None:
            return
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError):
            return

    @staticmethod
    def _roots_of(patterns: Sequence[str]) -> dict[str, bool]:
        roots: dict[str, bool] = {}
        for pattern in patterns:
            root, recursive = watch_root(pattern)
            roots[root] = roots.get(root, False) or recursive
        return roots
