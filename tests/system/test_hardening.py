"""Operator mistakes and hostile setups, each tried on a real node with real processes.

Every case here once duplicated, crashed, hung or misled: two agents on one state dir, the
agent tailing its own state, absurd timeouts, an interrupted backfill that claimed success,
a config file that was silently ignored, bad URLs and addresses, a read-only state dir, a
``--path`` that matches nothing, SIGHUP. Each now ends with exact counts and the documented
exit status (docs/agent.md, "Running it").
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from elasticsearch import ApiError, Elasticsearch

from agent.deadletter import read_dead_letters
from devtools.simulate import write_events
from tests.esnode import PORT_OFFSET
from tests.system.conftest import (
    RSS_BOUND,
    Agent,
    RssSampler,
    agent_env,
    assert_exactly_once,
    cli,
    count,
    event_id_counts,
    expected_from,
    parse_summary,
    targets,
    wait_for_count,
)
from tests.system.test_crash import roll_over

pytestmark = pytest.mark.system


# A buffer far smaller than the file: when a signal comes, most lines are still unread (with
# the default 20,000-line buffer a fast reader holds a whole test file, and the drain then
# honestly finishes the run).
SMALL_BUFFER = {
    "APPMIXER_AUDIT_BATCH_MAX_EVENTS": "500",
    "APPMIXER_AUDIT_BUFFER_MAX_EVENTS": "1000",
}


def simulated(path: Path, events: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        assert write_events(out, events, seed=seed) == events
    return path


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def ship_then_linger(es: Elasticsearch, namespace: str, agent: Agent, events: int) -> None:
    """Until ``events`` are indexed, then six rescans (RESCAN_INTERVAL=1) and as many
    checkpoint writes, the agent logging all the while; then a graceful stop."""
    assert wait_for_count(es, targets(namespace)[0], events, 120, agent) == events
    time.sleep(6)
    assert agent.terminate() == 0, agent.tail()


def wait_shipping(es: Elasticsearch, namespace: str, agent: Agent, timeout: float = 60) -> None:
    """Until the node holds some of the agent's events (it is mid-way through the file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if count(es, targets(namespace)[0], refresh=False) > 0:
                return
        except ApiError:
            pass  # the target is being created: its shard is not searchable yet
        assert agent.alive(), agent.tail()
        time.sleep(0.2)
    raise AssertionError(f"nothing shipped within {timeout} s: {agent.tail()}")


class TestOneAgentPerStateDir:
    def test_second_agent_refused_and_rollover_adds_no_duplicate(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Row 1: the second agent on a state dir exits 2 naming the holder's pid; with one
        agent shipping across a rollover every event is in the index exactly once."""
        log_file = simulated(tmp_path / "logs" / "audit.log", 3000, seed=101)
        state = tmp_path / "state"
        common = {"es_url": es_url, "namespace": namespace, "state_dir": state}
        first = Agent([str(log_file)], **common)  # type: ignore[arg-type]
        events, _changes = targets(namespace)
        assert wait_for_count(es, events, 3000, 120, first) == 3000
        second = Agent([str(log_file)], **common)  # type: ignore[arg-type]
        assert second.wait(60) == 2
        line = one_line(second.stderr_path.read_text())
        assert line == (
            f"appmixer-audit: state dir {state} is in use by another agent (pid {first.pid}); "
            "give each agent its own --state-dir"
        )
        roll_over(es, namespace)
        simulated(log_file, 2000, seed=102)
        assert wait_for_count(es, events, 5000, 120, first) >= 5000
        assert first.terminate() == 0, first.tail()
        # The lock went with the process: a restart takes it at once and adds nothing.
        again = Agent([str(log_file)], once=True, **common)  # type: ignore[arg-type]
        assert again.wait(120) == 0, again.tail()
        assert parse_summary(again.stdout())["lines read"] == 0
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))


class TestOwnFilesNeverRead:
    def test_glob_covering_state_dir(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Row 3: ``--path logs/**`` with the state dir inside logs/: the registry, lock and
        dead-letter files are never read; two bad lines give exactly two dead letters."""
        logs = tmp_path / "logs"
        log_file = simulated(logs / "audit.log", 50, seed=103)
        with log_file.open("ab") as out:
            out.write(b'not json at all\n{"action": "Flow Updated"}\n')
        agent = Agent(
            [f"{logs}/**"], es_url=es_url, namespace=namespace, state_dir=logs / "state",
            log_dir=tmp_path,
        )  # fmt: skip
        ship_then_linger(es, namespace, agent, 50)
        letters = read_dead_letters(logs / "state" / "dlq")
        assert len(letters) == 2
        assert {letter["path"] for letter in letters} == {str(log_file)}
        warnings = agent.logged("own_files_excluded")
        assert len(warnings) == 1
        assert warnings[0]["directory"] == str((logs / "state").resolve())
        read = agent.logged("run_finished")[0]["read"]
        assert read == 52
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))

    def test_glob_covering_the_agents_own_log(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """The agent's stdout and stderr redirected into the watched directory are never
        read: only the audit log's events ship, and its own log does not feed itself."""
        logs = tmp_path / "logs"
        log_file = simulated(logs / "audit.log", 50, seed=104)
        agent = Agent(
            [f"{logs}/*"], es_url=es_url, namespace=namespace, state_dir=tmp_path / "state",
            log_dir=logs,
        )  # fmt: skip
        ship_then_linger(es, namespace, agent, 50)
        warnings = agent.logged("own_files_excluded")
        assert sorted(str(w["file"]) for w in warnings) == sorted(
            str(path.resolve()) for path in (agent.stdout_path, agent.stderr_path)
        )
        finished = agent.logged("run_finished")[0]
        assert (finished["read"], finished["skipped"], finished["dead_lettered"]) == (50, 0, 0)
        assert not (tmp_path / "state" / "dlq").exists() or not read_dead_letters(
            tmp_path / "state" / "dlq"
        )
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))


class TestBoundedSettings:
    @pytest.mark.parametrize("value", ["inf", "1e12", "nan", "-1"])
    def test_absurd_request_timeout(self, es_url: str, tmp_path: Path, value: str) -> None:
        """Row 4: ES_REQUEST_TIMEOUT=inf (or 1e12) is refused at start: one line, exit 2."""
        result = cli(
            "run", "--path", str(tmp_path / "*.log"), "--es-url", es_url, "--once",
            "--state-dir", str(tmp_path / "state"),
            env={"APPMIXER_AUDIT_ES_REQUEST_TIMEOUT": value},
        )  # fmt: skip
        assert result.returncode == 2
        line = one_line(result.stderr)
        assert line.startswith(
            f"appmixer-audit: invalid setting es_request_timeout "
            f"(APPMIXER_AUDIT_ES_REQUEST_TIMEOUT='{value}'): "
        )
        assert not (tmp_path / "state").exists()


class TestInterruptedBackfill:
    def test_signals_during_once_exit_non_zero_with_lines_left(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Row 5: SIGTERM, then SIGINT, during ``run --once``: exits 143 and 130, each summary
        says how many lines are left, and the run that finishes reads exactly those."""
        total = 30_000
        log_file = simulated(tmp_path / "logs" / "audit.log", total, seed=105)
        common = {
            "es_url": es_url, "namespace": namespace, "state_dir": tmp_path / "state",
            "once": True, "env": SMALL_BUFFER,
        }  # fmt: skip
        left = []
        for sig, status in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            agent = Agent([str(log_file)], **common)  # type: ignore[arg-type]
            agent.wait_for_event("pipeline_started")
            wait_shipping(es, namespace, agent)
            time.sleep(1.0)
            agent.process.send_signal(sig)
            assert agent.wait(120) == status, agent.tail()
            summary = parse_summary(agent.stdout())
            left.append(summary["interrupted: lines left for the next run"])
            finished = agent.logged("run_finished")[0]
            assert finished["lines_left"] == left[-1]
        assert total > left[0] > left[1] > 0
        final = Agent([str(log_file)], **common)  # type: ignore[arg-type]
        assert final.wait(300) == 0, final.tail()
        summary = parse_summary(final.stdout())
        assert summary["lines read"] == left[1]
        assert "interrupted: lines left for the next run" not in summary
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))


class TestConfigFileNamed:
    @pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
    def test_unusable_config_file_stops_before_work(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path, kind: str
    ) -> None:
        """Row 6: APPMIXER_AUDIT_CONFIG naming a missing file, a directory or a FIFO: exit 2
        with one line, and nothing read or shipped (no registry written)."""
        log_file = simulated(tmp_path / "logs" / "audit.log", 10, seed=106)
        config = tmp_path / "agent.toml"
        if kind == "directory":
            config.mkdir()
        elif kind == "fifo":
            os.mkfifo(config)
        result = cli(
            "run", "--path", str(log_file), "--es-url", es_url, "--once",
            "--state-dir", str(tmp_path / "state"),
            env={"APPMIXER_AUDIT_CONFIG": str(config)},
        )  # fmt: skip
        assert result.returncode == 2
        expected = {
            "missing": "does not exist",
            "directory": "is a directory",
            "fifo": "is not a regular file",
        }[kind]
        assert one_line(result.stderr) == (
            f"appmixer-audit: config file {config} (from APPMIXER_AUDIT_CONFIG) {expected}"
        )
        assert not (tmp_path / "state" / "registry.json").exists()

    def test_config_file_namespace_is_used(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """The same setup with a real file ships into the file's namespace, exactly."""
        log_file = simulated(tmp_path / "logs" / "audit.log", 10, seed=106)
        config = tmp_path / "agent.toml"
        config.write_text(f'namespace = "{namespace}"\n')
        result = cli(
            "run", "--path", str(log_file), "--es-url", es_url, "--once",
            "--state-dir", str(tmp_path / "state"),
            env={"APPMIXER_AUDIT_CONFIG": str(config)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert count(es, targets(namespace)[0]) == 10


class TestBadUrlsAndAddresses:
    @pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://h:notaport", "http://[::1"])
    @pytest.mark.parametrize("command", ["run", "search", "setup"])
    def test_bad_es_url(self, tmp_path: Path, command: str, url: str) -> None:
        """Row 7: an unusable --es-url on run, search and setup: one line, exit 2."""
        extra = ["--path", str(tmp_path / "*.log"), "--once"] if command == "run" else []
        result = cli(command, "--es-url", url, *extra)
        assert result.returncode == 2
        assert one_line(result.stderr).startswith(
            f"appmixer-audit: invalid setting es_url (--es-url '{url}'): "
        )

    def test_metrics_port_in_use(self, es_url: str, tmp_path: Path) -> None:
        """Row 8: a metrics port already taken: one line, exit 2, before any work."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            result = cli(
                "run", "--path", str(tmp_path / "*.log"), "--es-url", es_url, "--once",
                "--state-dir", str(tmp_path / "state"),
                "--metrics-address", f"127.0.0.1:{port}",
            )  # fmt: skip
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"appmixer-audit: metrics address 127.0.0.1:{port} (--metrics-address) cannot be "
            "bound: Address already in use"
        )
        assert not (tmp_path / "state" / "registry.json").exists()

    def test_metrics_address_the_host_lacks(self, es_url: str, tmp_path: Path) -> None:
        """Row 8: an address no interface has (TEST-NET-1, never routed): one line, exit 2."""
        result = cli(
            "run", "--path", str(tmp_path / "*.log"), "--es-url", es_url, "--once",
            "--state-dir", str(tmp_path / "state"), "--metrics-address", "192.0.2.1:9464",
        )  # fmt: skip
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            "appmixer-audit: metrics address 192.0.2.1:9464 (--metrics-address) cannot be "
            "bound: Cannot assign requested address"
        )

    def test_since_too_far_back(self, es_url: str) -> None:
        """Row 9: ``search --since 99999999d`` is a usage error, not an OverflowError."""
        result = cli("search", "--es-url", es_url, "--since", "99999999d")
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            "appmixer-audit: Invalid value for '--since': '99999999d' reaches back before "
            "the year 1 (see appmixer-audit search --help)"
        )


def _read_only_mounts() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind -o ro / / 2>/dev/null || true; true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


class TestStateDirNotWritable:
    def test_read_only_state_dir(self, es_url: str, tmp_path: Path) -> None:
        """Row 10: a state dir on a read-only mount: one line and exit 2 at once, for the
        sidecar and ``--once`` alike (it used to ship nothing and never end)."""
        if not _read_only_mounts():
            if os.environ.get("CI") == "true":
                pytest.fail("needs root and unshare to make a read-only mount")
            pytest.skip("needs root and unshare to make a read-only mount")
        log_file = simulated(tmp_path / "logs" / "audit.log", 10, seed=110)
        state = tmp_path / "state"
        state.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPMIXER_AUDIT_")}
        env.update(agent_env())
        for once in (["--once"], []):
            command = " ".join(
                [sys.executable, "-m", "agent", "run", "--path", str(log_file),
                 "--es-url", es_url, "--state-dir", str(state), *once]
            )  # fmt: skip
            script = f"mount --bind -o ro {state} {state} && exec {command}"
            result = subprocess.run(
                ["unshare", "-m", "sh", "-c", script],
                capture_output=True, text=True, env=env, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 2, result.stderr
            assert one_line(result.stderr) == (
                f"appmixer-audit: state dir (--state-dir) {state} is not writable: "
                "Read-only file system"
            )

    def test_state_dir_under_a_file(self, es_url: str, tmp_path: Path) -> None:
        """Row 10 for anyone (no root needed): a state dir that cannot be created."""
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        result = cli(
            "run", "--path", str(tmp_path / "*.log"), "--es-url", es_url, "--once",
            "--state-dir", str(blocker / "state"),
        )  # fmt: skip
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            f"appmixer-audit: state dir (--state-dir) {blocker / 'state'} cannot be created: "
            "Not a directory"
        )

    def test_ca_file_missing_or_not_a_certificate(self, es_url: str, tmp_path: Path) -> None:
        """A CA file that is missing, or holds no certificate, is refused at start."""
        junk = tmp_path / "ca.pem"
        junk.write_text("not a certificate\n")
        for ca, reason in (
            (tmp_path / "missing.pem", "cannot be read: No such file or directory"),
            (junk, "holds no usable certificate"),
        ):
            result = cli(
                "run", "--path", str(tmp_path / "*.log"), "--es-url", es_url, "--once",
                "--state-dir", str(tmp_path / "state"),
                env={"APPMIXER_AUDIT_ES_CA_CERTS": str(ca)},
            )  # fmt: skip
            assert result.returncode == 2
            assert one_line(result.stderr).startswith(
                f"appmixer-audit: CA file (ES_CA_CERTS) {ca} {reason}"
            )


class TestSilenceWouldMislead:
    def test_nothing_matched_and_directory(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Row 11: a --path matching nothing and one naming a directory each get a warning."""
        logs = tmp_path / "logs"
        simulated(logs / "audit.log", 5, seed=111)
        agent = Agent(
            [str(tmp_path / "nothing-*.log"), str(logs)], es_url=es_url,
            namespace=namespace, state_dir=tmp_path / "state", once=True,
        )  # fmt: skip
        assert agent.wait(120) == 0, agent.tail()
        assert parse_summary(agent.stdout())["lines read"] == 0
        (nothing,) = agent.logged("no_file_matched")
        assert nothing["pattern"] == str(tmp_path / "nothing-*.log")
        (directory,) = agent.logged("path_is_directory")
        assert directory["pattern"] == str(logs)
        assert directory["hint"] == f"try {logs}/*.log"


class TestSighup:
    def test_sighup_drains_like_sigterm(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Row 12: SIGHUP to the sidecar drains, logs it, exits 0; a restart completes the
        file with every event exactly once."""
        log_file = simulated(tmp_path / "logs" / "audit.log", 20_000, seed=112)
        common = {"es_url": es_url, "namespace": namespace, "state_dir": tmp_path / "state"}
        agent = Agent([str(log_file)], **common)  # type: ignore[arg-type]
        wait_shipping(es, namespace, agent)
        agent.process.send_signal(signal.SIGHUP)
        assert agent.wait(60) == 0, agent.tail()
        (requested,) = agent.logged("shutdown_requested")
        assert requested["signal"] == "SIGHUP"
        (finished,) = agent.logged("shutdown_finished")
        assert finished["drained"] is True
        assert finished["unsettled"] == 0
        again = Agent([str(log_file)], once=True, **common)  # type: ignore[arg-type]
        assert again.wait(300) == 0, again.tail()
        read_before = agent.logged("run_finished")[0]["read"]
        assert read_before + parse_summary(again.stdout())["lines read"] == 20_000
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))

    def test_sighup_during_once_exits_129(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """SIGHUP during ``run --once`` is an interruption like the others: 128 + 1."""
        log_file = simulated(tmp_path / "logs" / "audit.log", 20_000, seed=113)
        agent = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace,
            state_dir=tmp_path / "state", once=True, env=SMALL_BUFFER,
        )  # fmt: skip
        agent.wait_for_event("pipeline_started")
        wait_shipping(es, namespace, agent)
        agent.process.send_signal(signal.SIGHUP)
        assert agent.wait(60) == 129, f"{agent.stdout()}\n{agent.tail()}"
        assert parse_summary(agent.stdout())["interrupted: lines left for the next run"] > 0


class TestHonestShutdownLog:
    def test_drained_false_while_lines_are_unsettled(self, tmp_path: Path) -> None:
        """With nothing answering, a drain cannot finish: two SIGTERMs leave the log saying
        drained false with the unsettled count, never drained true."""
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]  # bound, never listening: connection refused
            log_file = simulated(tmp_path / "logs" / "audit.log", 100, seed=114)
            agent = Agent(
                [str(log_file)], es_url=f"http://127.0.0.1:{port}", namespace="unused",
                state_dir=tmp_path / "state", extra=["--no-setup"],
                env={"APPMIXER_AUDIT_SHUTDOWN_GRACE": "30"},
            )  # fmt: skip
            agent.wait_for_event("bulk_retry")
            agent.process.send_signal(signal.SIGTERM)
            agent.wait_for_event("shutdown_started")
            agent.process.send_signal(signal.SIGTERM)
            assert agent.wait(60) == 0, agent.tail()
        (finished,) = agent.logged("shutdown_finished")
        assert finished["drained"] is False
        assert finished["unsettled"] == 100

    def test_setup_failure_names_the_url(self, tmp_path: Path) -> None:
        """``setup_failed`` says which URL could not be reached."""
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{closed.getsockname()[1]}"
            log_file = simulated(tmp_path / "logs" / "audit.log", 1, seed=115)
            agent = Agent(
                [str(log_file)], es_url=url, namespace="unused", state_dir=tmp_path / "state"
            )  # fmt: skip
            failed = agent.wait_for_event("setup_failed")
            assert agent.terminate() == 0
        assert failed["es_url"] == url


GIB = 1024 * 1024 * 1024
# A port of this checkout's own range for the agent's metrics server.
METRICS_PORT = 9340 + PORT_OFFSET + 9


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return int(answer.status)


class TestGiantLine:
    def test_two_gib_sparse_line_is_read_through_and_dead_lettered(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Row 2: a 2 GiB sparse file holding one unfinished line, next to an ordinary file.
        With default settings the agent stays within the documented memory bound and healthy,
        the other file ships in full; when the newline and five events are appended, the
        giant line is one dead letter (offset 0, its length, its first bytes), the five
        events ship, the checkpoint is past it, and a restart reads nothing again."""
        logs = tmp_path / "logs"
        logs.mkdir()
        giant = logs / "giant.log"
        start = b'{"id":"giant","action":"Flow Updated","note":"'
        with giant.open("wb") as handle:
            handle.write(start)
            handle.truncate(2 * GIB)  # sparse: no disk used
        other = simulated(logs / "audit.log", 2000, seed=120)
        state = tmp_path / "state"
        common = {"es_url": es_url, "namespace": namespace, "state_dir": state}
        agent = Agent(
            [f"{logs}/*.log"], extra=["--metrics-address", f"127.0.0.1:{METRICS_PORT}"],
            env={"APPMIXER_AUDIT_LOG_LEVEL": "info"}, **common,  # type: ignore[arg-type]
        )  # fmt: skip
        sampler = RssSampler(agent, interval=0.2)
        sampler.start()
        events, _changes = targets(namespace)
        wanted = expected_from([other], namespace).event_ids
        assert wait_for_count(es, events, 2000, 180, agent) == 2000
        assert healthz(METRICS_PORT) == 200
        tail = [
            orjson.dumps({"id": f"after-giant-{n}", "created": "2026-11-27T10:00:00Z",
                          "action": "Flow Updated", "email": "ops@acme.example"}) + b"\n"
            for n in range(5)
        ]  # fmt: skip
        with giant.open("ab") as out:
            out.write(b'"}\n' + b"".join(tail))
        assert wait_for_count(es, events, 2005, 180, agent) == 2005
        assert healthz(METRICS_PORT) == 200
        peak = sampler.stop()
        assert agent.terminate() == 0, agent.tail()
        print(f"giant line: peak RSS {peak / 2**20:.0f} MiB (bound {RSS_BOUND / 2**20:.0f} MiB)")
        assert 0 < peak <= RSS_BOUND
        (letter,) = read_dead_letters(state / "dlq")
        assert letter["stage"] == "decode"
        assert (letter["path"], letter["offset"]) == (str(giant), 0)
        assert letter["length"] == 2 * GIB + 2  # the line without its newline
        assert letter["line"].encode().startswith(start)
        assert len(letter["line"]) == 512
        assert "longer than LINE_MAX_BYTES" in letter["reason"]
        counts = event_id_counts(es, events)
        assert set(counts) == wanted | {f"after-giant-{n}" for n in range(5)}
        assert max(counts.values()) == 1
        again = Agent([f"{logs}/*.log"], once=True, **common)  # type: ignore[arg-type]
        assert again.wait(120) == 0, again.tail()
        assert parse_summary(again.stdout())["lines read"] == 0
