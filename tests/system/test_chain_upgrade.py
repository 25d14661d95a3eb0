"""An agent of the previous version (chain heads in ``STATE_DIR/chain.json``) ships half a
log and stops; this version starts on the same state directory and ships the rest: the state
upgrades in place (one state file), nothing is shipped twice, the chain goes on in the same
stream, and ``verify`` finds it intact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from devtools.simulate import DEFAULT_START_MS, write_events
from tests.system.conftest import Agent, count, event_id_counts, targets

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS = "14100ba"  # the last commit whose agent kept chain heads in chain.json


@pytest.fixture
def previous_version(tmp_path: Path) -> Path:
    """The previous version's source tree, from git."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"], check=False
    )
    if known.returncode != 0:
        pytest.skip(f"commit {PREVIOUS} is not in this clone")
    tree = tmp_path / "previous"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS, "agent", "chain", "common", "indexer",
         "devtools", "mappings", "dashboards", "detection-rules"],
        capture_output=True, check=True,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def test_previous_state_directory_upgrades_in_place(
    es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path, previous_version: Path
) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    with log.open("wb") as out:
        write_events(out, 300, seed=11)
    key = tmp_path / "chain.key"
    key.write_bytes(os.urandom(32).hex().encode())
    state = tmp_path / "state"
    env = {
        **os.environ,
        "PYTHONPATH": str(previous_version),
        "APPMIXER_AUDIT_CHAIN_KEY_FILE": str(key),
        "APPMIXER_AUDIT_HOST_NAME": "pod-a",
    }
    old = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--once", "--path", str(log),
         "--es-url", es_url, "--namespace", namespace, "--state-dir", str(state)],
        cwd=previous_version, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert old.returncode == 0, old.stderr[-2000:]
    assert (state / "chain.json").exists()
    events = targets(namespace)[0]
    assert count(es, events) == 300

    with log.open("ab") as out:
        write_events(out, 200, seed=12, start_ms=DEFAULT_START_MS + 86_400_000)
    new = Agent(
        [str(log)], es_url=es_url, namespace=namespace, state_dir=state, once=True,
        env={"APPMIXER_AUDIT_CHAIN_KEY_FILE": str(key), "APPMIXER_AUDIT_HOST_NAME": "pod-a"},
    )  # fmt: skip
    assert new.wait(300) == 0, new.tail()
    assert new.logged("chain_state_upgraded"), new.tail()
    assert not new.logged("chain_restarted"), new.tail()
    assert not (state / "chain.json").exists()
    registry = orjson.loads((state / "registry.json").read_bytes())
    assert all("chain" in entry for entry in registry["files"])

    assert count(es, events) == 500
    assert all(n == 1 for n in event_id_counts(es, events).values())
    result = subprocess.run(
        [sys.executable, "-m", "agent", "verify", "--es-url", es_url, "--namespace", namespace,
         "--key-file", str(key), "--checkpoints", str(state / "chain-checkpoints.ndjson")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact; 1 stream, 500 events verified, 0 newer" in result.stdout
