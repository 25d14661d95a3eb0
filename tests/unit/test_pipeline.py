"""The whole pipeline as :func:`agent.pipeline.wire` builds it, without a node: real files,
registry, tailer, normalizer, settler and bulk sink, with the sink's transport faked
(:class:`tests.unit.test_sink_deliver.FakeTransport`). Stop order (read, drain, interrupt,
final checkpoint) and the failure paths (a loop that raises, a node that refuses for good,
a setup that fails first)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import Elasticsearch

from agent.config import Settings
from agent.files import Registry
from agent.pipeline import Pipeline, own_paths, wire
from common.retry import RetryPolicy
from indexer.cluster import ClusterRefusal
from indexer.outcomes import Answer
from indexer.sink import Doc
from tests.unit.test_sink_deliver import BUSY, FakeTransport

NOWHERE = Elasticsearch("http://127.0.0.1:9", max_retries=0, request_timeout=1)
QUICK = RetryPolicy(base=0.01, cap=0.05)


def record(n: int) -> bytes:
    return orjson.dumps(
        {"id": f"ev-{n}", "created": "2026-01-01T00:00:00Z", "action": "Flow Created"}
    )


def settings(tmp_path: Path) -> Settings:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return Settings(
        paths=[str(logs / "*.log")],
        state_dir=tmp_path / "state",
        dlq_dir=tmp_path / "dlq",
        shutdown_grace=5.0,
        batch_max_wait=0.05,
    )


def write(tmp_path: Path, lines: int) -> int:
    data = b"".join(record(n) + b"\n" for n in range(lines))
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "a.log").write_bytes(data)
    return len(data)


def acked(tmp_path: Path) -> list[int]:
    return [p.acked for p in Registry(tmp_path / "state").positions()]


def pipeline(
    tmp_path: Path,
    transport: FakeTransport,
    *,
    once: bool = True,
    setup: Callable[[], object] | None = None,
) -> Pipeline:
    return wire(
        settings(tmp_path), NOWHERE, once=once, setup=setup, policy=QUICK, transport=transport
    )


class TestOnce:
    def test_every_line_shipped_and_checkpointed(self, tmp_path: Path) -> None:
        size = write(tmp_path, 5)
        transport = FakeTransport()
        made = pipeline(tmp_path, transport)
        made.start()
        assert made.wait(20)
        made.close()
        assert made.failure is None
        assert sorted(i for r in transport.requests for i in r) == [f"ev-{n}" for n in range(5)]
        assert acked(tmp_path) == [size]
        summary = made.summary()
        assert (summary["shipped"], summary["in_flight"], summary["partial_lines"]) == (5, 0, 0)
        assert made.behind == 0

    def test_setup_is_retried_until_it_works_then_shipping_starts(self, tmp_path: Path) -> None:
        write(tmp_path, 1)
        calls: list[int] = []

        def setup() -> object:
            calls.append(1)
            if len(calls) < 3:
                raise EsConnectionError("node away")
            return None

        made = pipeline(tmp_path, FakeTransport(), setup=setup)
        made.start()
        assert made.wait(20)
        made.close()
        assert len(calls) == 3
        assert made.summary()["shipped"] == 1


class TestStop:
    def test_stop_drains_what_was_read_and_saves_the_checkpoint(self, tmp_path: Path) -> None:
        size = write(tmp_path, 3)
        made = pipeline(tmp_path, FakeTransport(), once=False)
        made.start()
        deadline = time.monotonic() + 20
        while made.summary()["shipped"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert made.stop(grace=5.0)
        assert not made.running
        assert not made.interrupt.is_set()  # drained in time: nothing interrupted
        assert acked(tmp_path) == [size]
        made.close()  # idempotent

    def test_a_node_that_never_takes_the_lines_is_interrupted_at_the_grace(
        self, tmp_path: Path
    ) -> None:
        """The sender is still retrying when the grace runs out: the interrupt ends the
        retry, nothing unsettled is checkpointed, and the stop says it did not drain."""
        write(tmp_path, 2)

        def busy(docs: Sequence[Doc]) -> Answer:
            return [BUSY] * len(docs)

        transport = FakeTransport([busy] * 10_000)
        made = pipeline(tmp_path, transport, once=False)
        made.start()
        deadline = time.monotonic() + 20
        while not transport.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        assert not made.stop(grace=0.5)
        assert time.monotonic() - started < 4.0
        assert made.interrupt.is_set()
        assert not made.running
        assert acked(tmp_path) in ([], [0])
        assert made.summary()["in_flight"] == 2

    def test_stop_before_anything_was_read(self, tmp_path: Path) -> None:
        made = pipeline(tmp_path, FakeTransport(), once=False)
        made.start()
        assert made.stop(grace=2.0)
        assert made.failure is None
        assert settings(tmp_path).state_dir in own_paths(settings(tmp_path))


class TestFailure:
    def test_a_loop_that_raises_stops_everything(self, tmp_path: Path) -> None:
        write(tmp_path, 2)

        def broken(_docs: Sequence[Doc]) -> Answer:
            raise RuntimeError("bug in the sink")

        made = pipeline(tmp_path, FakeTransport([broken]), once=False)
        made.start()
        assert made.wait(20)
        made.close()
        assert isinstance(made.failure, RuntimeError)
        assert made.interrupt.is_set()
        assert acked(tmp_path) in ([], [0])

    def test_a_node_that_refuses_for_good_is_a_failure(self, tmp_path: Path) -> None:
        def refuse() -> object:
            raise ClusterRefusal("this node is not Elasticsearch")

        made = pipeline(tmp_path, FakeTransport(), once=False, setup=refuse)
        made.start()
        assert made.wait(20)
        made.close()
        assert isinstance(made.failure, ClusterRefusal)
        assert made.interrupt.is_set()

    def test_the_reader_failing_stops_the_sender(self, tmp_path: Path) -> None:
        made = pipeline(tmp_path, FakeTransport(), once=False)
        failing = threading.Event()

        def explode(*_args: object) -> None:
            failing.set()
            raise OSError("disk gone")

        made.reader.tailer.read = explode  # type: ignore[method-assign,assignment]
        made.start()
        assert made.wait(20)
        made.close()
        assert failing.is_set()
        assert isinstance(made.failure, OSError)
