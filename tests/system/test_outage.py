"""The node goes away for 30 s mid-stream: nothing lost, nothing doubled, memory bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from devtools.devnode import DevNode
from devtools.simulate import iter_events
from tests.system.conftest import (
    RSS_BOUND,
    Agent,
    RssSampler,
    assert_exactly_once,
    count,
    expected_from,
    targets,
    unique_namespace,
    wait_for_count,
)

pytestmark = pytest.mark.system

EVENTS = 12_000
RATE = 200.0  # events a second: the writer outlasts the outage
OUTAGE = 30.0


def write_paced(path: Path, events: int, seed: int, rate: float) -> None:
    started = time.monotonic()
    with path.open("ab") as out:
        for index, record in enumerate(iter_events(events, seed)):
            out.write(orjson.dumps(record) + b"\n")
            if index % 20 == 0:
                out.flush()
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


class TestOutage:
    def test_node_stopped_for_thirty_seconds(
        self, fault_node: DevNode, fault_es: Elasticsearch, tmp_path: Path
    ) -> None:
        """Stopped 30 s mid-stream and started again: the agent resumes alone, exactly once."""
        namespace = unique_namespace("outage")
        log_file = tmp_path / "audit.log"
        log_file.touch()
        writer = threading.Thread(target=write_paced, args=(log_file, EVENTS, 21, RATE))
        agent = Agent(
            [str(log_file)], es_url=fault_node.url, namespace=namespace,
            state_dir=tmp_path / "state",
        )  # fmt: skip
        sampler = RssSampler(agent)
        sampler.start()
        writer.start()
        events_target, changes_target = targets(namespace)
        assert wait_for_count(fault_es, events_target, 500, 60, agent) >= 500
        fault_node.stop()
        stopped = time.monotonic()
        time.sleep(OUTAGE)
        assert agent.alive(), agent.tail()
        fault_node.start()
        outage = time.monotonic() - stopped
        writer.join(timeout=120)
        expected = expected_from([log_file], namespace)
        assert len(expected.event_ids) == EVENTS
        assert wait_for_count(fault_es, events_target, EVENTS, 180, agent) == EVENTS
        assert wait_for_count(fault_es, changes_target, expected.changes, 60, agent) >= 0
        peak = sampler.stop()
        assert agent.terminate() == 0, agent.tail()
        assert_exactly_once(fault_es, namespace, expected)
        problems = [e for e in agent.events() if e.get("level") == "warning"]
        assert any(e["event"] in {"bulk_retry", "replay_check_failed"} for e in problems)
        print(
            f"outage={outage:.1f}s (node down, including its restart) "
            f"peak_rss={peak / 2**20:.1f}MiB bound={RSS_BOUND / 2**20:.0f}MiB "
            f"events={count(fault_es, events_target)} warnings={len(problems)}"
        )
        assert peak < RSS_BOUND


class TestShutdownWhileUnreachable:
    def test_sigterm_with_no_node_exits_within_grace_and_loses_nothing(
        self, es: Elasticsearch, es_url: str, tmp_path: Path
    ) -> None:
        """With no node answering, SIGTERM still exits 0 after the grace; a later run ships
        every line the first one could not."""
        namespace = unique_namespace("grace")
        log_file = tmp_path / "audit.log"
        with log_file.open("wb") as out:
            for record in iter_events(300, 5):
                out.write(orjson.dumps(record) + b"\n")
        state = tmp_path / "state"
        stranded = Agent(
            [str(log_file)], es_url="http://127.0.0.1:9", namespace=namespace,
            state_dir=state, env={"APPMIXER_AUDIT_SHUTDOWN_GRACE": "3"},
        )  # fmt: skip
        time.sleep(4)
        assert stranded.alive(), stranded.tail()
        asked = time.monotonic()
        assert stranded.terminate(timeout=30) == 0, stranded.tail()
        assert time.monotonic() - asked < 3 + 5
        assert any(e.get("event") == "setup_failed" for e in stranded.events())
        finished = next(e for e in stranded.events() if e.get("event") == "shutdown_finished")
        assert finished["drained"] is False
        assert finished["shipped"] == 0
        later = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace, state_dir=state, once=True
        )
        assert later.wait(120) == 0, later.tail()
        expected = expected_from([log_file], namespace)
        assert_exactly_once(es, namespace, expected)
