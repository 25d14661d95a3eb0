"""Tamper evidence end to end: real agents killed with SIGKILL while the log is renamed and
copy-truncated and the targets roll over; then ``verify``, before and after tampering.

It runs on the plain node and on the secured one; there the agents ship with a writer API
key over HTTPS, an index admin (the superuser) tampers and rolls over, and ``verify`` runs
with a reader key, as an auditor would."""

from __future__ import annotations

import copy
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest
from elasticsearch import Elasticsearch

from tests.esnode import SecureNode
from tests.system.conftest import (
    Agent,
    assert_exactly_once,
    count,
    expected_from,
    targets,
    unique_namespace,
    wait_for_count,
)
from tests.system.test_crash import Writer, roll_over
from tests.system.test_least_privilege import mint

pytestmark = pytest.mark.system

EVENTS = 9_000
KILLS = 4
RATE = 1000.0  # lines a second: the writer runs about 9 s, across the kills


class RotatingWriter(Writer):
    """The crash test's writer, which renames the file at a third and copy-truncates it at
    two thirds (itself, between two lines, so no line falls between copy and truncation)."""

    def rotate(self, index: int, out: BinaryIO) -> BinaryIO:
        if index == self.events // 3:
            out.close()
            self.path.rename(self.path.with_name(self.path.name + ".1"))
            self.rotated_at = time.monotonic()
            return self.path.open("ab")
        if index == 2 * self.events // 3:
            out.flush()
            shutil.copyfile(self.path, self.path.with_name(self.path.name + ".2"))
            os.truncate(self.path, 0)
        return out


@dataclass
class Node:
    """Where the test runs: the node, who ships, who tampers, who verifies."""

    url: str
    namespace: str
    admin: Elasticsearch  # rolls over, tampers, counts
    agent_env: dict[str, str] = field(default_factory=dict)
    auditor_env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["plain", "secured"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Node:
    if request.param == "plain":
        es = request.getfixturevalue("es")
        return Node(request.getfixturevalue("es_url"), request.getfixturevalue("namespace"), es)
    secure_es: SecureNode = request.getfixturevalue("secure_es")
    namespace = unique_namespace("chain")
    return Node(
        secure_es.url,
        namespace,
        request.getfixturevalue("secure_admin"),
        secure_es.env(api_key_file=mint(secure_es, "writer", namespace, tmp_path)),
        secure_es.env(api_key_file=mint(secure_es, "reader", namespace, tmp_path)),
    )


def verify(node: Node, key: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """The verify command, with the agent's local checkpoint copies besides the index's."""
    command = [sys.executable, "-m", "agent", "verify", "--es-url", node.url]
    command += ["--namespace", node.namespace, "--key-file", str(key)]
    command += ["--checkpoints", str(state / "chain-checkpoints.ndjson")]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **node.auditor_env},
    )


def tamper(es: Elasticsearch, target: str, ids: list[str]) -> tuple[str, str, str]:
    """Delete one event, edit another, forge a third from a copy: straight through the API."""
    rng = random.Random(len(ids))
    deleted, edited, model = rng.sample(ids, 3)
    found = es.search(
        index=target, query={"ids": {"values": [deleted, edited, model]}}, seq_no_primary_term=True
    )
    hits = {hit["_id"]: hit for hit in found.body["hits"]["hits"]}
    es.delete(index=hits[deleted]["_index"], id=deleted, refresh=True)
    changed = copy.deepcopy(hits[edited]["_source"])
    changed["user"] = {"email": "someone-else@acme.example"}
    es.index(
        index=hits[edited]["_index"], id=edited, document=changed, refresh=True,
        if_seq_no=hits[edited]["_seq_no"], if_primary_term=hits[edited]["_primary_term"],
    )  # fmt: skip
    forged = copy.deepcopy(hits[model]["_source"])
    forged["event"]["id"] = "forged-by-hand"
    es.create(index=target, id="forged-by-hand", document=forged, refresh=True)
    return deleted, edited, "forged-by-hand"


class TestChainUnderCrashes:
    def test_kills_rotations_rollovers_then_tampering(self, node: Node, tmp_path: Path) -> None:
        """After SIGKILLs, a rename, a copytruncate and rollovers, verify says intact (exit 0),
        every event signed; after one deletion, one edit and one forgery it names exactly
        those three (exit 1)."""
        seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        key = tmp_path / "chain.key"
        key.write_bytes(os.urandom(32).hex().encode())
        env = {
            **node.agent_env,
            "APPMIXER_AUDIT_BATCH_MAX_EVENTS": "300",
            "APPMIXER_AUDIT_CHAIN_KEY_FILE": str(key),
            "APPMIXER_AUDIT_CHAIN_CHECKPOINT_INTERVAL": "1",
        }
        es, namespace = node.admin, node.namespace
        common = {"es_url": node.url, "namespace": namespace, "state_dir": tmp_path / "state"}
        common["env"] = env
        logs = tmp_path / "logs"
        log_file = logs / "audit.log"
        logs.mkdir()
        log_file.touch()
        writer = RotatingWriter(log_file, EVENTS, seed, RATE)
        writer.start()
        for number in range(KILLS):
            agent = Agent([f"{logs}/audit.log*"], **common)  # type: ignore[arg-type]
            time.sleep(rng.uniform(1.5, 4.0))
            assert agent.alive(), agent.tail()
            agent.kill()
            if number % 2 == 1:
                roll_over(es, namespace)
        writer.join(timeout=120)
        assert writer.error is None
        final = Agent([f"{logs}/audit.log*"], **common)  # type: ignore[arg-type]
        files = [logs / "audit.log.1", logs / "audit.log.2", log_file]
        expected = expected_from(files, namespace)
        events_target, _changes = targets(namespace)
        wanted = len(expected.event_ids)
        assert wait_for_count(es, events_target, wanted, 240, final) >= wanted
        assert final.terminate() == 0, final.tail()
        assert_exactly_once(es, namespace, expected)
        print(f"chain seed={seed} events={wanted}")

        assert count(es, f"appmixer-audit.checkpoints-{namespace}") > 0  # in the index too
        result = verify(node, key, tmp_path / "state")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{events_target}: intact; " in result.stdout
        assert f"{wanted} events verified, 0 newer than the last signed" in result.stdout

        deleted, edited, forged = tamper(es, events_target, sorted(expected.event_ids))
        result = verify(node, key, tmp_path / "state")
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert sorted(line.split()[0] for line in lines[:-1]) == ["ALTERED", "INSERTED", "MISSING"]
        for kind, event_id in (("MISSING", deleted), ("ALTERED", edited), ("INSERTED", forged)):
            assert any(line.startswith(kind) and event_id in line for line in lines), lines
        assert "NOT intact: 1 altered, 1 inserted, 1 missing" in lines[-1]
