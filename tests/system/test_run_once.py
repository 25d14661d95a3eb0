"""``run --once``: ship what is there, wait for every acknowledgement, summarize, exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from agent.deadletter import read_dead_letters
from devtools.simulate import write_events
from tests.system.conftest import (
    Agent,
    agent_env,
    assert_exactly_once,
    count,
    event_id_counts,
    expected_from,
    parse_summary,
    targets,
)

pytestmark = [pytest.mark.system, pytest.mark.compat]

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson"


class TestRunOnce:
    def test_sample_file(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """The sample: 12 events indexed, 1 skipped, 2 dead-lettered with reasons, exit 3."""
        log_file = tmp_path / "logs" / "audit.log"
        log_file.parent.mkdir()
        shutil.copy(SAMPLE, log_file)
        dlq = tmp_path / "dlq"
        agent = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace,
            state_dir=tmp_path / "state", dlq_dir=dlq, once=True,
        )  # fmt: skip
        assert agent.wait(120) == 3, agent.tail()
        summary = parse_summary(agent.stdout())
        assert summary["lines read"] == 15
        assert summary["shipped"] == 12
        assert summary["skipped"] == 1
        assert summary["dead-lettered"] == 2
        assert summary["partial lines pending"] == 0
        events, _changes = targets(namespace)
        assert count(es, events) == 12
        assert_exactly_once(es, namespace, expected_from([log_file], namespace))
        letters = read_dead_letters(dlq)
        assert [letter["line"] for letter in letters] == SAMPLE.read_text().splitlines()[-2:]
        assert [letter["stage"] for letter in letters] == ["decode", "normalize"]
        assert all(letter["reason"] and letter["path"] == str(log_file) for letter in letters)
        lines = SAMPLE.read_bytes().splitlines(keepends=True)
        assert [letter["offset"] for letter in letters] == [
            sum(len(line) for line in lines[:13]),
            sum(len(line) for line in lines[:14]),
        ]

    def test_twenty_thousand_simulated_events(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """A 20,000-event simulate file lands exactly: 20,000 events, once each, exit 0."""
        log_file = tmp_path / "logs" / "audit.log"
        log_file.parent.mkdir()
        with log_file.open("wb") as out:
            assert write_events(out, 20_000, seed=20) == 20_000
        agent = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace,
            state_dir=tmp_path / "state", once=True,
        )  # fmt: skip
        assert agent.wait(300) == 0, agent.tail()
        summary = parse_summary(agent.stdout())
        assert summary["lines read"] == 20_000
        assert summary["shipped"] == 20_000
        assert summary["dead-lettered"] == 0
        expected = expected_from([log_file], namespace)
        assert len(expected.event_ids) == 20_000
        assert_exactly_once(es, namespace, expected)

    def test_partial_last_line_waits(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """A last line without its newline is not shipped; the summary reports it pending."""
        log_file = tmp_path / "audit.log"
        with log_file.open("wb") as out:
            write_events(out, 100, seed=8)
            out.write(b'{"id":"half-written","created":"2026-11-25T09:00:00Z","act')
        agent = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace,
            state_dir=tmp_path / "state", once=True,
        )  # fmt: skip
        assert agent.wait(120) == 0, agent.tail()
        summary = parse_summary(agent.stdout())
        assert (summary["lines read"], summary["shipped"]) == (100, 100)
        assert summary["partial lines pending"] == 1
        assert summary["partial line bytes (no newline yet)"] == 58
        assert count(es, targets(namespace)[0]) == 100

    def test_second_run_ships_nothing_new(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """With its checkpoint, a second --once reads nothing; without it, all are 409s."""
        log_file = tmp_path / "audit.log"
        with log_file.open("wb") as out:
            write_events(out, 500, seed=3)
        common = {"es_url": es_url, "namespace": namespace, "once": True}
        first = Agent([str(log_file)], state_dir=tmp_path / "s1", **common)  # type: ignore[arg-type]
        assert first.wait(120) == 0, first.tail()
        again = Agent([str(log_file)], state_dir=tmp_path / "s1", **common)  # type: ignore[arg-type]
        assert again.wait(120) == 0, again.tail()
        assert parse_summary(again.stdout())["lines read"] == 0
        fresh = Agent([str(log_file)], state_dir=tmp_path / "s2", **common)  # type: ignore[arg-type]
        assert fresh.wait(120) == 0, fresh.tail()
        summary = parse_summary(fresh.stdout())
        assert (summary["duplicates"], summary["shipped"]) == (500, 0)
        assert count(es, targets(namespace)[0]) == 500

    def test_normalize_command_and_agent_agree_on_ids(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Id-less lines (CRLF too) get the same derived id from `normalize FILE` and `run`."""
        log_file = tmp_path / "audit.log"
        log_file.write_bytes(
            b'{"created":"2026-11-25T10:00:00Z","action":"Flow Started","email":"a@x.example"}\n'
            b'{"created":"2026-11-25T10:00:01Z","action":"Flow Stopped","email":"a@x.example"}\n'
            b'{"created":"2026-11-25T10:00:01Z","action":"Flow Stopped","email":"a@x.example"}\n'
            b'{"created":"2026-11-25T10:00:02Z","action":"Flow Deleted","email":"a@x.example"}\r\n'
        )
        env = {**os.environ, **agent_env(), "APPMIXER_AUDIT_NAMESPACE": namespace}
        printed = subprocess.run(
            [sys.executable, "-m", "agent", "normalize", str(log_file)],
            env=env, capture_output=True, check=True,
        )  # fmt: skip
        from_cli = [orjson.loads(line)["event"]["id"] for line in printed.stdout.splitlines()]
        assert len(set(from_cli)) == 4, "identical lines at different offsets are two events"
        agent = Agent(
            [str(log_file)], es_url=es_url, namespace=namespace,
            state_dir=tmp_path / "state", once=True,
        )  # fmt: skip
        assert agent.wait(120) == 0, agent.tail()
        assert set(event_id_counts(es, targets(namespace)[0])) == set(from_cli)
