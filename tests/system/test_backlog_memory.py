"""A 200,000-line backlog with the node paused: reading pauses, memory stays bounded."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from agent.config import Settings
from devtools.devnode import DevNode
from devtools.simulate import write_events
from indexer.setup import install
from tests.system.conftest import (
    RSS_BOUND,
    Agent,
    RssSampler,
    assert_exactly_once,
    expected_from,
    targets,
    unique_namespace,
    wait_for_count,
)

pytestmark = pytest.mark.system

LINES = 200_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


class TestBacklogMemory:
    def test_paused_node_backlog(
        self, fault_node: DevNode, fault_es: Elasticsearch, tmp_path: Path
    ) -> None:
        """With the node frozen, the agent reads only what its buffer holds and its RSS stays
        under the bound; once the node resumes, all 200,000 events arrive exactly once."""
        namespace = unique_namespace("backlog")
        log_file = tmp_path / "audit.log"
        with log_file.open("wb") as out:
            assert write_events(out, LINES, seed=200) == LINES
        target = Settings(es_url=[fault_node.url], namespace=namespace)
        install(fault_es, target.events_target, target.changes_target)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        fault_node.pause()
        try:
            agent = Agent(
                [str(log_file)], es_url=fault_node.url, namespace=namespace,
                state_dir=tmp_path / "state",
                extra=["--no-setup", "--metrics-address", f"127.0.0.1:{port}"],
            )  # fmt: skip
            sampler = RssSampler(agent, interval=0.25)
            sampler.start()
            read = previous = -1.0
            stable_since = time.monotonic()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # until reading has paused for 10 s
                time.sleep(1)
                assert agent.alive(), agent.tail()
                try:
                    status, text = fetch(base + "/metrics")
                except urllib.error.URLError:
                    continue  # not listening yet: the agent is still starting
                if status != 200:
                    continue
                read = metric(text, "appmixer_audit_lines_read_total")
                if read != previous:
                    previous, stable_since = read, time.monotonic()
                elif read > 0 and time.monotonic() - stable_since >= 10:
                    break
            fill = metric(fetch(base + "/metrics")[1], "appmixer_audit_buffer_fill_ratio")
            assert fetch(base + "/healthz")[0] == 200
            assert fetch(base + "/readyz")[0] == 503
            peak_paused = max(sampler.samples)
        finally:
            fault_node.resume()
        print(
            f"paused: lines_read={read:.0f} of {LINES} buffer_fill={fill:.2f} "
            f"peak_rss={peak_paused / 2**20:.1f}MiB bound={RSS_BOUND / 2**20:.0f}MiB"
        )
        assert 0 < read < LINES  # backpressure: the file holds the backlog, not memory
        assert fill >= 0.9
        assert peak_paused < RSS_BOUND
        events_target, changes_target = targets(namespace)
        assert wait_for_count(fault_es, events_target, LINES, 480, agent) == LINES
        expected = expected_from([log_file], namespace)
        assert wait_for_count(fault_es, changes_target, expected.changes, 60, agent) >= 0
        deadline = time.monotonic() + 30
        while fetch(base + "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert fetch(base + "/readyz")[0] == 200
        peak = sampler.stop()
        assert agent.terminate() == 0, agent.tail()
        print(f"after resume: peak_rss={peak / 2**20:.1f}MiB")
        assert peak < RSS_BOUND
        assert_exactly_once(fault_es, namespace, expected)
