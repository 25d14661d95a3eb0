"""``run`` without a node: the start-up refusals, a backfill with nothing to read against a
node that is away (it still finishes, exit 0), how the end of a run becomes an exit status
and a summary, and the signal and progress helpers."""

from __future__ import annotations

import gc
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import Elasticsearch

from agent.config import Settings
from agent.metrics import Health, Metrics
from agent.pipeline import Pipeline, wire
from cli import EXIT_FAILURE, EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from cli import run as cli_run
from indexer.access import AccessReport
from indexer.cluster import ClusterRefusal, UnsupportedCluster
from tests.unit.test_sink_deliver import MAPPING, FakeTransport, each

NOWHERE_URL = "http://127.0.0.1:9"


def settings(tmp_path: Path, **overrides: object) -> Settings:
    (tmp_path / "logs").mkdir(exist_ok=True)
    values: dict[str, object] = {
        "paths": [str(tmp_path / "logs" / "*.log")],
        "state_dir": tmp_path / "state",
        "dlq_dir": tmp_path / "dlq",
        "es_url": [NOWHERE_URL],
        "batch_max_wait": 0.05,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    """``run`` tunes the cyclic collector for its process; the test process gets its own
    settings back afterwards."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def nowhere() -> Elasticsearch:
    return Elasticsearch(NOWHERE_URL, max_retries=0, request_timeout=1)


class TestRun:
    def test_a_backfill_with_nothing_to_read_finishes_with_the_node_away(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = cli_run._run(settings(tmp_path), once=True, setup=False)
        assert status == EXIT_OK
        assert "lines read:" in capsys.readouterr().out

    def test_a_wired_run_tunes_the_collector(self, tmp_path: Path) -> None:
        """Once wired, the start-up objects are frozen and young objects are collected less
        often (``_tune_collector``)."""
        gc.unfreeze()
        assert cli_run._run(settings(tmp_path), once=True, setup=False) == EXIT_OK
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == cli_run.GC_THRESHOLDS

    def test_a_refused_start_leaves_the_collector_alone(self, tmp_path: Path) -> None:
        gc.unfreeze()
        before = gc.get_threshold()
        (tmp_path / "state").write_text("not a folder")
        assert cli_run._run(settings(tmp_path), once=True, setup=False) == EXIT_USAGE
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before

    def test_a_state_dir_that_is_a_file_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "state").write_text("not a folder")
        status = cli_run._run(settings(tmp_path), once=True, setup=False)
        assert status == EXIT_USAGE
        assert "state dir (--state-dir)" in capsys.readouterr().err

    def test_a_metrics_address_that_cannot_be_bound_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            address = f"127.0.0.1:{taken.getsockname()[1]}"
            status = cli_run._run(
                settings(tmp_path, metrics_address=address), once=True, setup=False
            )
        assert status == EXIT_USAGE
        assert "cannot be bound" in capsys.readouterr().err


class TestStartHelpers:
    def test_metrics_server_only_when_asked(self, tmp_path: Path) -> None:
        assert cli_run._metrics_server(settings(tmp_path), Metrics(), Health()) is None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = cli_run._metrics_server(
            settings(tmp_path, metrics_address=f"127.0.0.1:{port}"), Metrics(), Health()
        )
        assert server is not None
        server.stop()

    def test_a_node_away_is_returned_not_raised(self, tmp_path: Path) -> None:
        es = nowhere()
        unanswered = cli_run._identify(es, settings(tmp_path))
        assert isinstance(unanswered, EsConnectionError)
        with pytest.raises(EsConnectionError):
            cli_run._probe(es)()
        with pytest.raises(EsConnectionError):
            cli_run._starter(es, settings(tmp_path))()
        cli_run._make_visible(es, settings(tmp_path))  # logged, never raised

    def test_an_unreadable_registry_is_a_failure(self, tmp_path: Path) -> None:
        state = tmp_path / "state"
        state.mkdir()
        (state / "registry.json").write_text("{not json")
        with pytest.raises(cli_run._Refused) as refused:
            cli_run._pipeline(
                settings(tmp_path),
                nowhere(),
                once=True,
                setup=False,
                metrics=Metrics(),
                health=Health(),
                access=AccessReport(),
            )
        assert refused.value.status == EXIT_FAILURE


class TestFinish:
    def run_once(self, tmp_path: Path, transport: FakeTransport) -> Pipeline:
        lines = [
            orjson.dumps({"id": f"e{n}", "created": "2026-01-01T00:00:00Z", "action": "x.y"})
            for n in range(2)
        ]
        (tmp_path / "logs").mkdir(exist_ok=True)
        (tmp_path / "logs" / "a.log").write_bytes(b"\n".join(lines) + b"\n")
        made = wire(settings(tmp_path), nowhere(), once=True, transport=transport)
        made.start()
        assert made.wait(20)
        made.close()
        return made

    def test_everything_shipped_is_0_with_a_summary(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        made = self.run_once(tmp_path, FakeTransport())
        assert cli_run._finish(made, settings(tmp_path), once=True, signum=None) == EXIT_OK
        assert "shipped:" in capsys.readouterr().out

    def test_a_refused_line_is_3_and_names_the_dead_letters(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        made = self.run_once(tmp_path, FakeTransport([each({"create": {"status": 201}}, MAPPING)]))
        status = cli_run._finish(made, settings(tmp_path), once=True, signum=None)
        assert status == EXIT_REJECTED
        assert "dead letters are in" in capsys.readouterr().out

    def test_a_stop_by_signal_counts_the_lines_left(self, tmp_path: Path) -> None:
        made = self.run_once(tmp_path, FakeTransport())
        status = cli_run._finish(made, settings(tmp_path), once=False, signum=signal.SIGTERM)
        assert status == EXIT_OK

    @pytest.mark.parametrize(
        ("failure", "status"),
        [
            (UnsupportedCluster("OpenSearch 2.11 is not Elasticsearch"), EXIT_USAGE),
            (ClusterRefusal("refused for good"), EXIT_FAILURE),
            (RuntimeError("a bug"), EXIT_FAILURE),
        ],
    )
    def test_a_failure_is_its_status(self, failure: BaseException, status: int) -> None:
        assert cli_run._failure_status(failure) == status


class TestSignals:
    def test_first_stops_second_hurries(self) -> None:
        signals = cli_run._Signals()
        hurried: list[bool] = []
        try:
            signals._handle(signal.SIGTERM, None)
            assert signals.stop.is_set()
            assert signals.signum == signal.SIGTERM
            signals.on_second = lambda: hurried.append(True)
            signals._handle(signal.SIGINT, None)
            assert hurried == [True]
            assert signals.signum == signal.SIGTERM  # the first one is the one reported
        finally:
            signals.restore()
        assert signal.getsignal(signal.SIGTERM) is not signals._handle


class TestProgress:
    def test_drawn_only_on_a_terminal(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        made = wire(settings(tmp_path), nowhere(), once=True, transport=FakeTransport())
        quiet = cli_run._Progress(enabled=False)
        quiet.draw(made)
        quiet.clear()
        assert capsys.readouterr().err == ""
        shown = cli_run._Progress(enabled=True)
        shown.draw(made)
        shown.clear()
        assert "read 0" in capsys.readouterr().err
        made.close()
