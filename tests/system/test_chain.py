"""Tamper evidence end to end: real agents killed with SIGKILL while the log is renamed and
copy-truncated and the targets roll over; then ``verify``, before and after tampering.

It runs on the plain node and on the secured one; there the agents ship with a writer API
key over HTTPS, an index admin (the superuser) tampers and rolls over, and ``verify`` runs
with a reader key, as an auditor would."""

from __future__ import annotations

import contextlib
import copy
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest
from elasticsearch import Elasticsearch

from agent.evidence.chains import read_local_checkpoints
from devtools.simulate import DEFAULT_START_MS, write_events
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

pytestmark = [pytest.mark.system, pytest.mark.compat]

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


def verify(
    node: Node, keys: list[Path], state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """The verify command, with the agent's local checkpoint copies besides the index's."""
    command = [sys.executable, "-m", "agent", "verify", "--es-url", node.url]
    command += ["--namespace", node.namespace]
    for key in keys:
        command += ["--key-file", str(key)]
    command += ["--checkpoints", str(state / "chain-checkpoints.ndjson"), *extra]
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
        result = verify(node, [key], tmp_path / "state")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{events_target}: intact; " in result.stdout
        assert f"{wanted} events verified, 0 newer than the last signed" in result.stdout

        deleted, edited, forged = tamper(es, events_target, sorted(expected.event_ids))
        result = verify(node, [key], tmp_path / "state")
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert sorted(line.split()[0] for line in lines[:-1]) == ["ALTERED", "INSERTED", "MISSING"]
        for kind, event_id in (("MISSING", deleted), ("ALTERED", edited), ("INSERTED", forged)):
            assert any(line.startswith(kind) and event_id in line for line in lines), lines
        assert "NOT intact: 1 altered, 1 inserted, 1 missing" in lines[-1]


class TestCopyBeforeTheFirstRequest:
    def test_a_copy_of_a_file_not_yet_in_the_registry_continues_its_chain(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """``copytruncate`` just after the agent read the file, while its lines wait for the
        first request (so the registry has no entry for it), the copy holding 50 lines more
        than were read: the copy continues the original's chain from 0, its first lines are
        the original's again (replays), and verify finds one intact stream of the 150."""
        key = tmp_path / "chain.key"
        key.write_bytes(os.urandom(32).hex().encode())
        logs, staging = tmp_path / "logs", tmp_path / "staging"
        logs.mkdir()
        staging.mkdir()
        log_file = logs / "audit.log"
        with log_file.open("ab") as out:
            write_events(out, 100, seed=3)
        agent = Agent(
            [f"{logs}/audit.log*"], es_url=es_url, namespace=namespace,
            state_dir=tmp_path / "state",
            env={
                "APPMIXER_AUDIT_CHAIN_KEY_FILE": str(key),
                "APPMIXER_AUDIT_CHAIN_CHECKPOINT_INTERVAL": "1",
                "APPMIXER_AUDIT_BATCH_MAX_EVENTS": "100000",
                "APPMIXER_AUDIT_BATCH_MAX_WAIT": "8",  # the first request waits this long
                "APPMIXER_AUDIT_LOG_LEVEL": "debug",
            },
        )  # fmt: skip
        agent.wait_for_event("file_identified", 60)  # read at once; sent only after the wait
        with (staging / "copy").open("wb") as out:  # the copy, made whole, then moved in
            out.write(log_file.read_bytes())
            write_events(out, 50, seed=4, start_ms=DEFAULT_START_MS + 86_400_000)
        (staging / "copy").rename(logs / "audit.log.1")
        os.truncate(log_file, 0)
        with log_file.open("ab") as out:
            write_events(out, 20, seed=5, start_ms=DEFAULT_START_MS + 2 * 86_400_000)
        copied = agent.wait_for_event("file_copy_detected", 30)
        assert copied["registered"] is False
        assert copied["offset"] == 0
        events_target, _changes = targets(namespace)
        assert wait_for_count(es, events_target, 170, 120, agent) == 170
        assert agent.terminate() == 0, agent.tail()
        assert_exactly_once(
            es, namespace, expected_from([logs / "audit.log.1", log_file], namespace)
        )
        result = verify(Node(es_url, namespace, es), [key], tmp_path / "state")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "intact; 2 streams, 170 events verified, 0 newer than the last signed" in (
            result.stdout
        )


def wait_for_signed_head(state: Path, seq: int, timeout: float) -> None:
    """Until a checkpoint in the agent's local copy signs a head at ``seq``."""
    local = state / "chain-checkpoints.ndjson"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ValueError):  # not there yet, or a line half written
            if any(
                head.seq >= seq
                for checkpoint in read_local_checkpoints(local)
                for head in checkpoint.heads
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint signed a head at {seq} in {timeout} s")


class TestChainKeyRotation:
    def test_a_key_rotated_under_a_running_agent(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """The key file rewritten while the agent runs: the old key signs up to the switch,
        the new one from there, no restart; verify agrees with both keys, with the old one
        alone (the rest unsigned, not altered) and with the new one from the switch on."""
        old_key, new_key = os.urandom(32).hex(), os.urandom(32).hex()
        key = tmp_path / "chain.key"
        key.write_text(old_key + "\n")
        old_copy = tmp_path / "old.key"
        shutil.copy(key, old_copy)
        log_file = tmp_path / "logs" / "audit.log"
        log_file.parent.mkdir()
        with log_file.open("ab") as out:
            write_events(out, 60, seed=1)
        state = tmp_path / "state"
        agent = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace, state_dir=state,
            env={
                "APPMIXER_AUDIT_CHAIN_KEY_FILE": str(key),
                "APPMIXER_AUDIT_CHAIN_CHECKPOINT_INTERVAL": "1",
            },
        )  # fmt: skip
        node = Node(es_url, namespace, es)
        events_target, _changes = targets(namespace)
        assert wait_for_count(es, events_target, 60, 120, agent) == 60
        wait_for_signed_head(state, 60, 30)  # the switch comes after all 60 are signed

        replacement = tmp_path / "chain.key.new"
        replacement.write_text(new_key + "\n")
        replacement.replace(key)
        rotated = agent.wait_for_event("chain_key_rotated", 30)
        switched_at = datetime.now(UTC).isoformat()
        with log_file.open("ab") as out:
            write_events(out, 40, seed=2, start_ms=DEFAULT_START_MS + 86_400_000)
        assert wait_for_count(es, events_target, 100, 120, agent) == 100
        assert agent.terminate() == 0, agent.tail()
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))
        assert rotated["old_key_id"] != rotated["key_id"]
        logged = agent.stderr_path.read_text()
        assert old_key not in logged
        assert new_key not in logged

        both = verify(node, [old_copy, key], state)
        assert both.returncode == 0, both.stdout + both.stderr
        assert "intact; 1 stream, 100 events verified, 0 newer than the last signed" in both.stdout

        old_only = verify(node, [old_copy], state)
        assert old_only.returncode == 0, old_only.stdout + old_only.stderr
        assert "60 events verified, 40 newer than the last signed" in old_only.stdout
        assert "under keys not given" in old_only.stdout

        new_only = verify(node, [key], state, "--since", switched_at)
        assert new_only.returncode == 0, new_only.stdout + new_only.stderr
        assert "40 events verified, 0 newer than the last signed" in new_only.stdout
