"""Measuring instruments for ``bench/run.py``: child processes, the node, the index.

Every figure of a shipper comes from the kernel, not from the shipper: CPU time of a
finished child from ``wait4``; its peak RSS from ``VmHWM`` in ``/proc/PID/status``, read
every 50 ms while it runs (``wait4``'s ``ru_maxrss`` is no use here: Linux carries the
parent's high-water mark into a child across fork and exec, so every child of a large
harness would report at least the harness's own size); the
node's CPU time from its own stats (``process.cpu.total_in_millis``); and what is indexed
from ``_count``. Nothing here asserts anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from elasticsearch import ApiError, Elasticsearch, TransportError


@dataclass
class Usage:
    """What one finished child cost: wall seconds, CPU seconds, peak RSS (MiB), exit status."""

    wall: float
    cpu: float
    peak_rss_mib: float
    status: int


class Child:
    """A child process whose resource use is read back exactly (``wait4``) when it ends."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdout: Path | None = None,
    ) -> None:
        self._out = stdout.open("wb") if stdout is not None else subprocess.DEVNULL
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            list(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        self.usage: Usage | None = None
        self.peak_rss = 0.0
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._watching.wait(0.05):
            _rss, hwm = self.rss_mib()
            self.peak_rss = max(self.peak_rss, hwm)

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) RSS in MiB while running; (0, 0) once it is gone."""
        fields: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = float(value.split()[0]) / 1024
        except OSError:
            pass
        return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)

    def wait(self, timeout: float | None = None) -> Usage | None:
        """Reap the child and record its usage; None if it is still running at the timeout."""
        if self.usage is not None:
            return self.usage
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG if deadline else 0)
            if pid == self.pid:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        wall = time.perf_counter() - self.started
        self._watching.set()
        self.process.returncode = os.waitstatus_to_exitcode(status)
        if self._out is not subprocess.DEVNULL:
            self._out.close()  # type: ignore[union-attr]
        self.usage = Usage(
            wall,
            rusage.ru_utime + rusage.ru_stime,
            self.peak_rss,
            self.process.returncode,
        )
        return self.usage

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> Usage:
        """Signal the child (SIGKILL after ``timeout``) and reap it."""
        if self.usage is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            if self.wait(timeout) is None:
                os.kill(self.pid, signal.SIGKILL)
        usage = self.wait()
        assert usage is not None
        return usage


def node_cpu(es: Elasticsearch) -> float | None:
    """CPU seconds the node's process has used so far, as the node reports them."""
    try:
        info = es.nodes.stats(node_id="_local", metric="process")
        millis = next(iter(info["nodes"].values()))["process"]["cpu"]["total_in_millis"]
    except (ApiError, TransportError, KeyError, StopIteration):
        return None
    return float(millis) / 1000


def wait_quiet(
    es: Elasticsearch, *, busy: float = 0.15, window: float = 1.0, timeout: float = 60.0
) -> float:
    """Wait until the node uses less than ``busy`` of a core over ``window`` seconds (the
    merges and flushes of the previous run are over), at most ``timeout``; the seconds
    waited. Every run then starts on a quiet node, so no run pays for the one before it."""
    started = time.monotonic()
    before = node_cpu(es)
    while before is not None and time.monotonic() - started < timeout:
        time.sleep(window)
        after = node_cpu(es)
        if after is None or after - before < busy * window:
            break
        before = after
    return time.monotonic() - started


def node_version(es: Elasticsearch) -> str:
    """The node's version (from node info: not every distribution answers ``GET /``)."""
    try:
        info = es.nodes.info(node_id="_local", metric="_none")
        return str(next(iter(info["nodes"].values()))["version"])
    except (ApiError, TransportError, KeyError, StopIteration):
        return "unknown"


def count(es: Elasticsearch, index: str) -> int:
    """Searchable documents in ``index`` (a comma list is fine); 0 while it does not exist."""
    try:
        return int(es.count(index=index, ignore_unavailable=True)["count"])
    except (ApiError, TransportError):
        return 0


def drop(es: Elasticsearch, index: str) -> None:
    """Delete a plain index a run wrote (data streams cannot be deleted everywhere)."""
    with contextlib.suppress(ApiError, TransportError):
        es.indices.delete(index=index, ignore_unavailable=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def machine() -> dict[str, object]:
    """The facts a reader needs to compare figures between machines."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def commit(root: Path) -> str:
    """The checkout's commit, with ``+dirty`` when it has changes: what the figures are of."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
