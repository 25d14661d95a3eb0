"""Helpers for system tests: real ``appmixer-audit run`` processes against real nodes.

Tests that stop, pause or cluster nodes get dedicated DevNodes on their own ports, so the
shared session node stays up for every other test. Expected results are computed by the
same Normalizer the agent uses, over the exact bytes on disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from elasticsearch import Elasticsearch

from agent.files.identity import prefix_of
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source
from devtools.devnode import DevNode
from indexer.setup import install
from tests.esnode import node_ports

HOST_NAME = "system-test-host"
FAULT_NODE = node_ports("aa-faults", 9320, 9420)
CLUSTER_NODES = (node_ports("aa-c1", 9330, 9430), node_ports("aa-c2", 9331, 9431))

# The agent's resident memory bound with the default buffer (2,000 lines / 8 MiB) and
# batch (2,000 events / 5 MiB) settings; docs/agent.md explains the arithmetic.
RSS_BOUND = 256 * 1024 * 1024


class RssSampler(threading.Thread):
    """Samples an agent's resident memory every ``interval`` seconds until stopped."""

    def __init__(self, agent: Agent, interval: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.agent = agent
        self.interval = interval
        self.samples: list[int] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            rss = self.agent.rss()
            if rss:
                self.samples.append(rss)

    def stop(self) -> int:
        """Stop sampling; return the peak in bytes."""
        self._stop_event.set()
        self.join(timeout=5)
        return max(self.samples, default=0)


def unique_namespace(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8]


@dataclass
class Expected:
    """What the index must hold after shipping some files: ids and change document count."""

    event_ids: set[str] = field(default_factory=set)
    changes: int = 0
    skipped: int = 0
    rejected: int = 0


def expected_from(files: Sequence[Path], namespace: str) -> Expected:
    """Normalize every complete line of ``files`` exactly as the agent does."""
    normalizer = Normalizer(NormalizeOptions(namespace=namespace, host_name=HOST_NAME))
    result = Expected()
    for path in files:
        data = path.read_bytes()
        head = prefix_of(data, 1024)
        if head is None:
            continue
        offset = 0
        while (end := data.find(b"\n", offset)) >= 0:
            line = data[offset:end]  # as the tailer hands it over: without the newline
            outcome = normalizer(line, Source(str(path), head.fingerprint, offset, HOST_NAME))
            if isinstance(outcome, Normalized):
                result.event_ids.add(outcome.event_id)
                result.changes += len(outcome.changes)
            elif type(outcome).__name__ == "Skipped":
                result.skipped += 1
            else:
                result.rejected += 1
            offset = end + 1
    return result


def targets(namespace: str) -> tuple[str, str]:
    return f"logs-appmixer.audit-{namespace}", f"logs-appmixer.audit_changes-{namespace}"


def count(es: Elasticsearch, target: str, *, refresh: bool = True) -> int:
    if refresh:
        es.indices.refresh(index=target, ignore_unavailable=True, allow_no_indices=True)
    response = es.count(index=target, ignore_unavailable=True, allow_no_indices=True)
    return int(response["count"])


def event_id_counts(es: Elasticsearch, target: str) -> Counter[str]:
    """Every event.id in the target (all backing indices) with its number of documents."""
    es.indices.refresh(index=target)
    counts: Counter[str] = Counter()
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {
            "size": 10_000,
            "sources": [{"id": {"terms": {"field": "event.id"}}}],
        }
        if after is not None:
            composite["after"] = after
        response = es.options(request_timeout=120).search(
            index=target, size=0, aggs={"ids": {"composite": composite}}
        )
        buckets = response["aggregations"]["ids"]["buckets"]
        for bucket in buckets:
            counts[bucket["key"]["id"]] += bucket["doc_count"]
        after = response["aggregations"]["ids"].get("after_key")
        if not buckets or after is None:
            return counts


def wait_for_count(
    es: Elasticsearch, target: str, wanted: int, timeout: float, agent: Agent | None = None
) -> int:
    """Poll until ``target`` holds ``wanted`` documents (or more); return the last count.

    Polls rely on the node's own periodic refresh (forced refreshes would slow indexing
    down); one forced refresh confirms the end.
    """
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        try:
            seen = count(es, target, refresh=False)
            if seen >= wanted or (seen >= 0 and wanted - seen < 50):
                seen = count(es, target)
        except Exception:  # a node starting up answers errors for a moment
            seen = -1
        if seen >= wanted:
            return seen
        if agent is not None and not agent.alive():
            raise AssertionError(f"agent exited early ({agent.returncode}): {agent.tail()}")
        time.sleep(1.0)
    return seen


def assert_exactly_once(es: Elasticsearch, namespace: str, expected: Expected) -> None:
    """The index holds every expected event exactly once, and every change document once."""
    events, changes = targets(namespace)
    counts = event_id_counts(es, events)
    duplicated = {key: n for key, n in counts.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events indexed more than once"
    assert set(counts) == expected.event_ids, (
        f"missing {len(expected.event_ids - set(counts))}, "
        f"unexpected {len(set(counts) - expected.event_ids)}"
    )
    assert count(es, events) == len(expected.event_ids)
    assert count(es, changes) == expected.changes


class Agent:
    """One ``appmixer-audit run`` process; stderr (JSON logs) kept in a file."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        es_url: str,
        namespace: str,
        state_dir: Path,
        dlq_dir: Path | None = None,
        once: bool = False,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        command = [sys.executable, "-m", "agent", "run", "--es-url", es_url]
        command += ["--namespace", namespace, "--state-dir", str(state_dir)]
        for path in paths:
            command += ["--path", path]
        if dlq_dir is not None:
            command += ["--dlq-dir", str(dlq_dir)]
        if once:
            command.append("--once")
        command += list(extra)
        log_dir = log_dir or state_dir.parent
        log_dir.mkdir(parents=True, exist_ok=True)
        index = len(list(log_dir.glob("agent-*.stderr")))
        self.stderr_path = log_dir / f"agent-{index}.stderr"
        self.stdout_path = log_dir / f"agent-{index}.stdout"
        full_env = {**os.environ, **agent_env(), **(env or {})}
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env
            )
        self.pid = self.process.pid
        _STARTED.append(self)

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no final checkpoint."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the graceful exit.

        The signal is sent once the agent handles it: its handlers are in place before it
        logs anything, and a SIGTERM while the interpreter is still starting would end it
        the default way (no drain), which is not what these tests are about."""
        deadline = time.monotonic() + timeout
        while self.alive() and not self.stderr_path.stat().st_size:
            if time.monotonic() > deadline:
                raise AssertionError("the agent logged nothing: it never got started")
            time.sleep(0.05)
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def open_paths(self) -> set[Path]:
        """The files the agent has open now."""
        fds = Path(f"/proc/{self.pid}/fd")
        found = set()
        for fd in fds.iterdir() if fds.is_dir() else ():
            with contextlib.suppress(OSError):
                found.add(fd.readlink())
        return found

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def rss(self) -> int:
        """Resident memory in bytes (0 when gone)."""
        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The agent's structured log events."""
        found = []
        for raw in self.stderr_path.read_bytes().splitlines():
            try:
                found.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
        return found

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The agent's log events named ``event``, in order."""
        return [entry for entry in self.events() if entry.get("event") == event]

    def wait_for_event(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """The first log event named ``event``, waiting for it while the agent is alive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.logged(event)
            if found:
                return found[0]
            assert self.alive(), self.tail()
            time.sleep(0.2)
        raise AssertionError(f"no {event} within {timeout} s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])


_STARTED: list[Agent] = []


@pytest.fixture(autouse=True)
def _no_agent_left_behind() -> Iterator[None]:
    """An agent a failed test did not stop is killed, so none outlives its test."""
    yield
    while _STARTED:
        agent = _STARTED.pop()
        if agent.alive():
            agent.kill()


def agent_env() -> dict[str, str]:
    """Settings every system test shares: quick discovery, short waits, a fixed host name."""
    return {
        "APPMIXER_AUDIT_HOST_NAME": HOST_NAME,
        "APPMIXER_AUDIT_RESCAN_INTERVAL": "1",
        "APPMIXER_AUDIT_BATCH_MAX_WAIT": "0.2",
        "APPMIXER_AUDIT_SHUTDOWN_GRACE": "20",
        "APPMIXER_AUDIT_LOG_LEVEL": "info",
    }


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """One ``appmixer-audit`` command as a real process, with only the given settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("APPMIXER_AUDIT_")}
    full.update(agent_env())
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        env=full,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def parse_summary(text: str) -> dict[str, int]:
    """``run --once``'s summary lines (``name: number``) as a dict."""
    summary = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition(":")
        if sep and value.strip().isdigit():
            summary[name.strip()] = int(value)
    return summary


@pytest.fixture(scope="session")
def fault_node() -> Iterator[DevNode]:
    """A node of its own for tests that stop or pause it (the shared node stays up)."""
    name, http_port, transport_port = FAULT_NODE
    node = DevNode(name, http_port, transport_port, heap="1g")
    node.stop()
    node.wipe()
    node.start()
    yield node
    node.stop()
    node.wipe()


@pytest.fixture
def fault_es(fault_node: DevNode) -> Iterator[Elasticsearch]:
    """A client of the fault node; the node is running (and resumed) when the test starts."""
    fault_node.resume()
    fault_node.start()
    client = Elasticsearch(fault_node.url, request_timeout=60)
    yield client
    client.close()
    fault_node.resume()


def ship_once(es: Elasticsearch, es_url: str, work: Path, prefix: str) -> str:
    """Install the targets of a namespace of its own (``prefix`` and the time), ship
    ``work/logs/*.ndjson`` into it with ``run --once``, check that every line was shipped,
    refresh both targets; the namespace."""
    namespace = prefix + time.strftime("%H%M%S") + uuid.uuid4().hex[:6]
    report = install(es, *targets(namespace))
    assert report.ok, report.lines()
    logs = work / "logs"
    written = sum(len(path.read_bytes().splitlines()) for path in logs.glob("*.ndjson"))
    agent = Agent(
        [str(logs / "*.ndjson")], es_url=es_url, namespace=namespace,
        state_dir=work / "state", once=True,
    )  # fmt: skip
    assert agent.wait(600) == 0, agent.tail()
    assert parse_summary(agent.stdout())["shipped"] == written
    es.indices.refresh(index=",".join(targets(namespace)))
    return namespace
