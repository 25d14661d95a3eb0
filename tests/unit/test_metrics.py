"""Counted outcomes, gauges, health and the HTTP endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest

from agent.batch import BoundedBuffer
from agent.metrics import Health, Metrics, MetricsServer
from tests.fakes import FakeClock


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    value = metrics.registry.get_sample_value(name, labels or {})
    return None if value is None else float(value)


class TestMetrics:
    def test_fates_are_counted_and_mirrored(self) -> None:
        """Each fate increments its Prometheus counter and the plain summary numbers alike."""
        metrics = Metrics()
        metrics.read(10)
        metrics.shipped(6, changes=9)
        metrics.duplicate(1)
        metrics.skip(1)
        metrics.dead_letter("index", 2)
        metrics.retry("429 es_rejected_execution_exception", 3)
        metrics.change_rejected(1)
        counts = metrics.snapshot()
        assert counts.as_dict() == {
            "read": 10,
            "shipped": 6,
            "duplicates": 1,
            "skipped": 1,
            "dead_lettered": 2,
            "retried": 3,
            "changes_shipped": 9,
            "changes_rejected": 1,
        }
        assert counts.settled == 10
        assert sample(metrics, "appmixer_audit_lines_read_total") == 10
        assert sample(metrics, "appmixer_audit_events_shipped_total") == 6
        assert sample(metrics, "appmixer_audit_duplicates_total") == 1
        assert sample(metrics, "appmixer_audit_skipped_total") == 1
        assert sample(metrics, "appmixer_audit_changes_dead_lettered_total") == 1
        assert sample(metrics, "appmixer_audit_dead_lettered_total", {"stage": "index"}) == 2
        assert (
            sample(
                metrics,
                "appmixer_audit_retried_total",
                {"reason": "429 es_rejected_execution_exception"},
            )
            == 3
        )

    def test_registries_are_independent(self) -> None:
        """Two instances never share counters (tests and embedded pipelines stay apart)."""
        first, second = Metrics(), Metrics()
        first.read(5)
        assert sample(second, "appmixer_audit_lines_read_total") == 0

    def test_lag_gauge_follows_the_tailed_files(self) -> None:
        """Bytes behind is per file, and a file no longer tailed disappears from the output."""
        metrics = Metrics()
        metrics.set_lag({"/logs/a.log": 100, "/logs/b.log": 5})
        assert sample(metrics, "appmixer_audit_bytes_behind", {"path": "/logs/a.log"}) == 100
        metrics.set_lag({"/logs/b.log": 0})
        assert sample(metrics, "appmixer_audit_bytes_behind", {"path": "/logs/a.log"}) is None
        assert sample(metrics, "appmixer_audit_bytes_behind", {"path": "/logs/b.log"}) == 0

    def test_buffer_fill_uses_the_tighter_bound(self) -> None:
        """The fill ratio reports whichever bound (events or bytes) is closer to full."""
        metrics = Metrics()
        metrics.set_buffer(events=10, size=900, max_events=100, max_bytes=1000)
        assert sample(metrics, "appmixer_audit_buffer_fill_ratio") == pytest.approx(0.9)
        assert sample(metrics, "appmixer_audit_buffer_events") == 10

    def test_tracked_buffer_is_read_at_scrape_time(self) -> None:
        """A tracked buffer's fill is current whenever scraped, without anyone updating it."""
        metrics = Metrics()
        buffer: BoundedBuffer[int] = BoundedBuffer(max_events=4, max_bytes=1000)
        metrics.track_buffer(buffer)
        assert sample(metrics, "appmixer_audit_buffer_fill_ratio") == 0
        buffer.put(1, 100)
        buffer.put(2, 100)
        assert sample(metrics, "appmixer_audit_buffer_events") == 2
        assert sample(metrics, "appmixer_audit_buffer_bytes") == 200
        assert sample(metrics, "appmixer_audit_buffer_fill_ratio") == pytest.approx(0.5)

    def test_bulk_latency_histogram(self) -> None:
        """Each bulk request's duration lands in the histogram."""
        metrics = Metrics()
        metrics.observe_bulk(0.2)
        metrics.observe_bulk(3.0)
        assert sample(metrics, "appmixer_audit_bulk_latency_seconds_count") == 2
        assert sample(metrics, "appmixer_audit_bulk_latency_seconds_sum") == pytest.approx(3.2)


class TestHealth:
    def test_alive_until_a_loop_stops_beating(self) -> None:
        """A loop whose last heartbeat is older than stuck_after makes the process not alive."""
        clock = FakeClock(1000.0)
        health = Health(stuck_after=10, clock=clock)
        health.beat("reader")
        health.beat("sender")
        clock.now += 5
        health.beat("sender")
        assert health.alive()[0]
        clock.now += 6
        ok, ages = health.alive()
        assert not ok
        assert ages == {"reader": 11.0, "sender": 6.0}
        health.finished("reader")
        assert health.alive()[0]

    def test_ready_needs_setup_and_a_reachable_cluster(self) -> None:
        """Readiness waits for setup, then follows the probe, cached for probe_ttl seconds."""
        clock = FakeClock(1000.0)
        answers = [True, False]
        calls: list[int] = []

        def probe() -> bool:
            calls.append(1)
            return answers[len(calls) - 1]

        health = Health(probe=probe, probe_ttl=2.0, clock=clock)
        assert health.ready() == (False, "setup not done")
        health.setup_done()
        assert health.ready() == (True, "ok")
        assert health.ready() == (True, "ok")
        assert len(calls) == 1
        clock.now += 2.5
        assert health.ready() == (False, "elasticsearch unreachable")

    def test_probe_exception_means_unreachable(self) -> None:
        """A probe that raises reports not ready instead of crashing the endpoint."""

        def probe() -> bool:
            raise ConnectionError("refused")

        health = Health(probe=probe)
        health.setup_done()
        assert health.ready() == (False, "elasticsearch unreachable")


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class TestMetricsServer:
    def test_endpoints(self) -> None:
        """/metrics serves Prometheus text, /healthz and /readyz answer 200 or 503 as JSON."""
        metrics = Metrics()
        metrics.read(3)
        clock = FakeClock(1000.0)
        health = Health(stuck_after=10, clock=clock)
        health.beat("sender")
        server = MetricsServer("127.0.0.1:0", metrics, health)
        server.start()
        try:
            base = f"http://127.0.0.1:{server.address[1]}"
            status, body = fetch(base + "/metrics")
            assert status == 200
            assert b"appmixer_audit_lines_read_total 3.0" in body
            assert fetch(base + "/healthz")[0] == 200
            status, body = fetch(base + "/readyz")
            assert (status, orjson.loads(body)) == (503, {"status": "setup not done"})
            health.setup_done()
            assert fetch(base + "/readyz")[0] == 200
            clock.now += 60
            status, body = fetch(base + "/healthz")
            assert status == 503
            assert orjson.loads(body)["status"] == "stuck"
            assert fetch(base + "/nope")[0] == 404
        finally:
            server.stop()
