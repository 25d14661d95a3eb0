"""Counted outcomes, health, and the opt-in HTTP endpoint for Prometheus and Kubernetes.

Every line read has exactly one fate and each fate has a counter: shipped, duplicate (a
replay Elasticsearch already had), skipped (not an audit record) or dead-lettered. So
``lines_read == shipped + duplicates + skipped + dead_lettered + in flight`` at any moment, and
a gap is visible on a dashboard instead of hidden. Plain integers mirror the counters for the
``run --once`` summary, because reading a prometheus counter back is not part of its API.

The endpoint (``Settings.metrics_address``) serves ``/metrics`` (Prometheus text),
``/healthz`` (the process is alive and its loops are not stuck) and ``/readyz``
(setup done and Elasticsearch reachable). Registries are per instance, so tests and several
pipelines in one process never collide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_PREFIX = "appmixer_audit"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BufferLike(Protocol):
    @property
    def events(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    max_events: int
    max_bytes: int


@dataclass
class Counts:
    """The fates of lines so far, as plain numbers (the summary of ``run --once``)."""

    read: int = 0
    shipped: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retried: int = 0
    changes_shipped: int = 0
    changes_rejected: int = 0

    @property
    def settled(self) -> int:
        return self.shipped + self.duplicates + self.skipped + self.dead_lettered

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Metrics:
    """The agent's counters, gauges and bulk latency histogram, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.counts = Counts()
        self._lock = threading.Lock()
        self._lag_paths: set[str] = set()
        r = self.registry
        self.lines_read = Counter(f"{_PREFIX}_lines_read", "Complete lines read.", registry=r)
        self.events_shipped = Counter(
            f"{_PREFIX}_events_shipped", "Events Elasticsearch created.", registry=r
        )
        self.changes_shipped = Counter(
            f"{_PREFIX}_changes_shipped", "Companion change documents created.", registry=r
        )
        self.duplicates = Counter(
            f"{_PREFIX}_duplicates",
            "Events already in the index (409 or found by the replay check), acknowledged.",
            registry=r,
        )
        self.retried = Counter(
            f"{_PREFIX}_retried",
            "Documents sent again after a retryable failure.",
            ["reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            f"{_PREFIX}_dead_lettered",
            "Lines written to the dead-letter file, by stage.",
            ["stage"],
            registry=r,
        )
        self.changes_dead_lettered = Counter(
            f"{_PREFIX}_changes_dead_lettered",
            "Change documents refused by Elasticsearch and dead-lettered (their event shipped).",
            registry=r,
        )
        self.skipped = Counter(
            f"{_PREFIX}_skipped", "Lines that are not audit records, acknowledged.", registry=r
        )
        self.bytes_behind = Gauge(
            f"{_PREFIX}_bytes_behind", "Bytes not yet read, per file.", ["path"], registry=r
        )
        self.buffer_events = Gauge(f"{_PREFIX}_buffer_events", "Lines buffered.", registry=r)
        self.buffer_bytes = Gauge(f"{_PREFIX}_buffer_bytes", "Bytes buffered.", registry=r)
        self.buffer_fill = Gauge(
            f"{_PREFIX}_buffer_fill_ratio",
            "Buffer use against its tighter bound (1 means reading is paused).",
            registry=r,
        )
        self.bulk_latency = Histogram(
            f"{_PREFIX}_bulk_latency_seconds",
            "Duration of one bulk request.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    # --- counting, mirrored into plain numbers
    def read(self, n: int = 1) -> None:
        self.lines_read.inc(n)
        with self._lock:
            self.counts.read += n

    def shipped(self, events: int, changes: int = 0) -> None:
        self.events_shipped.inc(events)
        self.changes_shipped.inc(changes)
        with self._lock:
            self.counts.shipped += events
            self.counts.changes_shipped += changes

    def duplicate(self, n: int = 1) -> None:
        self.duplicates.inc(n)
        with self._lock:
            self.counts.duplicates += n

    def skip(self, n: int = 1) -> None:
        self.skipped.inc(n)
        with self._lock:
            self.counts.skipped += n

    def dead_letter(self, stage: str, n: int = 1) -> None:
        self.dead_lettered.labels(stage=stage).inc(n)
        with self._lock:
            self.counts.dead_lettered += n

    def change_rejected(self, n: int = 1) -> None:
        self.changes_dead_lettered.inc(n)
        with self._lock:
            self.counts.changes_rejected += n

    def retry(self, reason: str, n: int = 1) -> None:
        self.retried.labels(reason=reason).inc(n)
        with self._lock:
            self.counts.retried += n

    def observe_bulk(self, seconds: float) -> None:
        self.bulk_latency.observe(seconds)

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(**self.counts.as_dict())

    # --- gauges
    def set_buffer(self, events: int, size: int, max_events: int, max_bytes: int) -> None:
        self.buffer_events.set(events)
        self.buffer_bytes.set(size)
        self.buffer_fill.set(max(events / max_events, size / max_bytes))

    def track_buffer(self, buffer: BufferLike) -> None:
        """Read the buffer's fill at scrape time, so it is right even while the sender waits."""
        self.buffer_events.set_function(lambda: buffer.events)
        self.buffer_bytes.set_function(lambda: buffer.bytes)
        self.buffer_fill.set_function(
            lambda: max(buffer.events / buffer.max_events, buffer.bytes / buffer.max_bytes)
        )

    def set_lag(self, lag: Mapping[str, int]) -> None:
        """Replace the per-file lag; files no longer tailed disappear from the output."""
        with self._lock:
            for gone in self._lag_paths - set(lag):
                self.bytes_behind.remove(gone)
            for path, behind in lag.items():
                self.bytes_behind.labels(path=path).set(behind)
            self._lag_paths = set(lag)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Health:
    """Liveness from loop heartbeats; readiness from setup and a probe of Elasticsearch.

    A loop that waits on purpose (backoff, a full buffer) still beats while waiting, so
    ``/healthz`` fails only when a loop is truly stuck and a restart would help.
    """

    def __init__(
        self,
        *,
        stuck_after: float = 120.0,
        probe: Callable[[], bool] | None = None,
        probe_ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stuck_after = stuck_after
        self._probe = probe
        self._probe_ttl = probe_ttl
        self._clock = clock
        self._beats: dict[str, float] = {}
        self._setup_done = False
        self._probed_at: float | None = None
        self._probe_ok = False
        self._lock = threading.Lock()

    def beat(self, loop: str) -> None:
        self._beats[loop] = self._clock()

    def finished(self, loop: str) -> None:
        """A loop that ended normally is no longer watched."""
        self._beats.pop(loop, None)

    def setup_done(self) -> None:
        self._setup_done = True

    def alive(self) -> tuple[bool, dict[str, float]]:
        now = self._clock()
        ages = {loop: round(now - at, 3) for loop, at in dict(self._beats).items()}
        return all(age < self.stuck_after for age in ages.values()), ages

    def ready(self) -> tuple[bool, str]:
        if not self._setup_done:
            return False, "setup not done"
        if self._probe is None:
            return True, "ok"
        with self._lock:
            now = self._clock()
            if self._probed_at is None or now - self._probed_at >= self._probe_ttl:
                try:
                    self._probe_ok = self._probe()
                except Exception:
                    self._probe_ok = False
                self._probed_at = now
            return (True, "ok") if self._probe_ok else (False, "elasticsearch unreachable")


class MetricsServer:
    """A small threaded HTTP server for /metrics, /healthz and /readyz."""

    def __init__(self, address: str, metrics: Metrics, health: Health) -> None:
        host, _, port = address.rpartition(":")
        handler = _handler(metrics, health)
        self._server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)  # noqa: S104
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, ages = health.alive()
                body = _json({"status": "ok" if ok else "stuck", "heartbeat_age_seconds": ages})
                self._send(200 if ok else 503, body)
            elif path == "/readyz":
                ok, detail = health.ready()
                self._send(200 if ok else 503, _json({"status": detail}))
            else:
                self._send(404, _json({"status": "not found"}))

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds would flood stderr; requests are not logged."""

    return Handler


def _json(value: Any) -> bytes:
    return orjson.dumps(value)
