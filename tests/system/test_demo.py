"""``appmixer-audit demo`` (the README's first command) on the test node, run again and again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from tests.system.conftest import agent_env, count, event_id_counts, parse_summary, targets

pytestmark = pytest.mark.system

EVENTS = 300


def tour(
    es_url: str, namespace: str, workdir: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "agent", "demo", "--es-url", es_url, "--namespace", namespace,
        "--workdir", str(workdir), "--events", str(EVENTS), *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **agent_env()},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


class TestDemo:
    def test_every_run_ships_and_verifies_its_own_events(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """A second tour on the same machine is a new day: shipped, verified, on top."""
        events, _changes = targets(namespace)
        shipped: list[set[str]] = []
        for run in (1, 2):
            result = tour(es_url, namespace, tmp_path)
            summary = parse_summary(result.stdout)
            assert summary["shipped"] == EVENTS, result.stdout
            assert summary["duplicates"] == 0
            assert f"intact; 1 stream, {EVENTS} events verified, 0 newer" in result.stdout
            es.indices.refresh(index=events)
            assert count(es, events) == run * EVENTS
            ids = event_id_counts(es, events)
            assert set(ids.values()) == {1}
            shipped.append(set(ids) - set().union(*shipped))
        assert [len(ids) for ids in shipped] == [EVENTS, EVENTS]
        # The table printed last heads with the second run's newest event.
        lines = result.stdout.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("Action "))
        rows = lines[header + 1 : header + 11]
        assert len(rows) == 10
        assert rows[0].split()[-1] in shipped[1], rows
        assert {row.split()[-1] for row in rows} <= shipped[0] | shipped[1], rows

    def test_a_given_seed_replays_the_same_day_and_ships_it_once(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        events, _changes = targets(namespace)
        first = parse_summary(tour(es_url, namespace, tmp_path, "--seed", "11").stdout)
        second = parse_summary(tour(es_url, namespace, tmp_path, "--seed", "11").stdout)
        assert first["shipped"] == EVENTS
        assert second["shipped"] == 0
        es.indices.refresh(index=events)
        assert count(es, events) == EVENTS
