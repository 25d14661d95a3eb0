"""No false alarm on untouched data: real agents (``run --once``) ship what Appmixer and
operators really produce, then ``verify`` must find nothing (rows 6, 7, 8 and 10 of issue
19): a record written twice, files sharing a first line, one file tailed by two pods,
events Elasticsearch refused, with and without a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from agent.config import Settings
from indexer.setup import install
from tests.system.conftest import Agent, count, event_id_counts, parse_summary, targets
from tests.system.test_rejection import provoke_conflict, record

pytestmark = pytest.mark.system

BANNER = b'{"level":30,"time":1764064800000,"msg":"audit logger started","pid":1}\n'


def audit_line(n: int, *, with_id: bool = True, tag: str = "a") -> bytes:
    value: dict[str, Any] = {
        "created": f"2026-11-25T10:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z",
        "action": "Flow Updated",
        "email": f"user-{tag}-{n}@acme.example",
        "flowId": f"flow-{tag}-{n}",
        "before": {"stage": "stopped"},
        "after": {"stage": "running"},
    }
    if with_id:
        value["id"] = f"evt-{tag}-{n}"
    return orjson.dumps(value) + b"\n"


def run_once(
    paths: list[Path], es_url: str, namespace: str, state: Path, *, key: Path | None,
    host: str = "pod-a",
) -> Agent:  # fmt: skip
    env = {"APPMIXER_AUDIT_HOST_NAME": host}
    if key is not None:
        env["APPMIXER_AUDIT_CHAIN_KEY_FILE"] = str(key)
    agent = Agent(
        [str(p) for p in paths], es_url=es_url, namespace=namespace, state_dir=state,
        dlq_dir=state.parent / f"dlq-{host}", once=True, env=env,
    )  # fmt: skip
    agent.wait(180)
    return agent


def verify(
    es_url: str, namespace: str, key: Path | None, states: list[Path]
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agent", "verify", "--es-url", es_url]
    command += ["--namespace", namespace]
    if key is not None:
        command += ["--key-file", str(key)]
    for state in states:
        local = state / "chain-checkpoints.ndjson"
        if local.exists():
            command += ["--checkpoints", str(local)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ)
    )


def ship_and_verify(
    es: Elasticsearch, es_url: str, namespace: str, paths: list[Path], state: Path, *,
    key: Path, events: int, streams: int,
) -> None:  # fmt: skip
    """One agent ships ``paths`` once; ``events`` stored, verify intact over ``streams``."""
    agent = run_once(paths, es_url, namespace, state, key=key)
    assert agent.returncode == 0, agent.tail()
    assert count(es, targets(namespace)[0]) == events
    result = verify(es_url, namespace, key, [state])
    assert result.returncode == 0, result.stdout + result.stderr
    stream_word = "stream" if streams == 1 else "streams"
    assert f"intact; {streams} {stream_word}, {events} events verified, 0 newer" in result.stdout


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "chain.key"
    path.write_bytes(os.urandom(32).hex().encode())
    return path


class TestNoFalseAlarms:
    def test_row6_same_record_twice_in_one_file(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path, key: Path
    ) -> None:
        """The same audit record (same input id) twice in one file: stored once, and its
        second place in the chain is a declared gap, not MISSING."""
        lines = [audit_line(n) for n in range(100)]
        lines.insert(51, lines[20])
        log = tmp_path / "audit.log"
        log.write_bytes(b"".join(lines))
        ship_and_verify(
            es, es_url, namespace, [log], tmp_path / "state", key=key, events=100, streams=1
        )

    def test_row7_two_files_with_the_same_first_line(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path, key: Path
    ) -> None:
        """Two unrelated files that begin with the same logger banner: two streams."""
        logs = tmp_path / "logs"
        logs.mkdir()
        for tag in ("a", "b"):
            lines = [audit_line(n, tag=tag) for n in range(150)]
            (logs / f"{tag}.log").write_bytes(BANNER + b"".join(lines))
        paths = [logs / "a.log", logs / "b.log"]
        ship_and_verify(
            es, es_url, namespace, paths, tmp_path / "state", key=key, events=300, streams=2
        )

    def test_row8_one_file_two_pods(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path, key: Path
    ) -> None:
        """One log on a shared volume tailed by two pods: each event stored once (id-less
        ones too), each pod's chain complete with the other's copies declared as gaps."""
        lines = [audit_line(n, with_id=n % 4 != 0) for n in range(400)]
        log = tmp_path / "shared" / "audit.log"
        log.parent.mkdir()
        log.write_bytes(b"".join(lines))
        states = [tmp_path / "state-a", tmp_path / "state-b"]
        for host, state in zip(("pod-a", "pod-b"), states, strict=True):
            agent = run_once([log], es_url, namespace, state, key=key, host=host)
            assert agent.returncode == 0, agent.tail()
        events = targets(namespace)[0]
        assert count(es, events) == 400
        assert all(n == 1 for n in event_id_counts(es, events).values())
        result = verify(es_url, namespace, key, states)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "MISSING" not in result.stdout
        # pod-b's stream holds only gaps (pod-a stored every event first): nothing to walk
        assert "400 events verified, 0 newer" in result.stdout

    @pytest.mark.parametrize("signed", [False, True], ids=["no-key", "key"])
    def test_row10_refused_events_are_gaps(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path, key: Path, *,
        signed: bool,
    ) -> None:  # fmt: skip
        """12 events Elasticsearch refuses (400, dead-lettered): gaps in the chain, declared
        with a key (signed) or without one (unsigned checkpoints): never MISSING."""
        settings = Settings(es_url=[es_url], namespace=namespace)
        install(es, settings.events_target, settings.changes_target)
        provoke_conflict(es, namespace)
        lines = [record(n, str(1000 + n) if n % 5 else f"not-a-number-{n}") for n in range(60)]
        log = tmp_path / "audit.log"
        log.write_bytes(b"".join(lines))
        state = tmp_path / "state"
        try:
            agent = run_once([log], es_url, namespace, state, key=key if signed else None)
        finally:
            es.indices.delete_index_template(name=f"test-conflict-{namespace}")
        assert agent.returncode == 3, agent.tail()
        assert parse_summary(agent.stdout())["dead-lettered"] == 12
        result = verify(es_url, namespace, key if signed else None, [state])
        assert "MISSING" not in result.stdout, result.stdout
        if signed:
            assert result.returncode == 0, result.stdout + result.stderr
            assert "intact; 1 stream, 48 events verified" in result.stdout
        else:
            assert result.returncode == 4, result.stdout + result.stderr
            assert "NOTHING VERIFIED" in result.stdout
