"""Two nodes, one replica: one node stops mid-stream and the agent carries on, losing nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from devtools.devnode import DevNode
from tests.system.conftest import (
    CLUSTER_NODES,
    Agent,
    assert_exactly_once,
    expected_from,
    targets,
    unique_namespace,
    wait_for_count,
)
from tests.system.test_outage import write_paced

pytestmark = pytest.mark.system

EVENTS = 9_000
RATE = 300.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[DevNode]]:
    """Two master-eligible data nodes forming one cluster, started side by side."""
    seeds = [f"127.0.0.1:{transport}" for _name, _http, transport in CLUSTER_NODES]
    names = [name for name, _http, _transport in CLUSTER_NODES]
    options = {"cluster_name": "aa-audit-cluster", "seed_hosts": seeds, "heap": "1g"}
    nodes = [
        DevNode(name, http, transport, initial_master_nodes=names, **options)
        for name, http, transport in CLUSTER_NODES
    ]
    for node in nodes:
        node.stop()
        node.wipe()
    starters = [
        threading.Thread(target=node.start, kwargs={"wait_healthy": False}) for node in nodes
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(timeout=180)
    client = Elasticsearch([node.url for node in nodes], request_timeout=60)
    health = client.cluster.health(wait_for_nodes="2", timeout="120s")
    assert health["number_of_nodes"] == 2
    client.close()
    yield nodes
    for node in nodes:
        node.stop()
        node.wipe()


class TestCluster:
    def test_node_stopped_mid_stream(self, cluster: list[DevNode], tmp_path: Path) -> None:
        """With both URLs configured and one replica, stopping a node loses nothing."""
        namespace = unique_namespace("cluster")
        es = Elasticsearch([node.url for node in cluster], request_timeout=60)
        log_file = tmp_path / "audit.log"
        log_file.touch()
        writer = threading.Thread(target=write_paced, args=(log_file, EVENTS, 33, RATE))
        agent = Agent(
            [str(log_file)], es_url=",".join(node.url for node in cluster),
            namespace=namespace, state_dir=tmp_path / "state",
        )  # fmt: skip
        writer.start()
        events_target, changes_target = targets(namespace)
        assert wait_for_count(es, events_target, 300, 60, agent) >= 300
        assert wait_for_count(es, changes_target, 1, 30, agent) >= 1
        health = es.cluster.health(
            index=f"{events_target},{changes_target}", wait_for_status="green", timeout="60s"
        )
        assert health["status"] == "green"
        settings = es.indices.get_settings(index=events_target, name="index.number_of_replicas")
        assert {s["settings"]["index"]["number_of_replicas"] for s in settings.values()} == {"1"}
        master = es.cat.master(format="json")[0]["node"]
        victim = next(node for node in cluster if node.name != master)
        survivor = next(node for node in cluster if node.name == master)
        victim.stop()
        stopped_at = time.monotonic()
        es.close()
        es = Elasticsearch(survivor.url, request_timeout=60)
        writer.join(timeout=120)
        expected = expected_from([log_file], namespace)
        assert len(expected.event_ids) == EVENTS
        assert wait_for_count(es, events_target, EVENTS, 180, agent) == EVENTS
        assert wait_for_count(es, changes_target, expected.changes, 60, agent) >= 0
        assert agent.terminate() == 0, agent.tail()
        assert_exactly_once(es, namespace, expected)
        assert any(e.get("event") == "bulk_retry" for e in agent.events())  # it was noticed
        print(
            f"cluster: stopped {victim.name} (kept master {survivor.name}) "
            f"{time.monotonic() - stopped_at:.1f}s before the end; {EVENTS} events exactly once"
        )
