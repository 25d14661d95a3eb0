"""kill -9 at random moments while a writer appends and rotates: every event exactly once."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import BinaryIO

import orjson
import pytest
from elasticsearch import ApiError, Elasticsearch

from devtools.simulate import iter_events
from tests.system.conftest import (
    Agent,
    assert_exactly_once,
    expected_from,
    targets,
    wait_for_count,
)

pytestmark = [pytest.mark.system, pytest.mark.compat]

EVENTS = 30_000
KILLS = 6
RATE = 1500.0  # lines a second: the writer runs about 20 s, across all the kills


class Writer(threading.Thread):
    """Appends simulated events at a steady rate; renames the file once, half-way."""

    def __init__(self, path: Path, events: int, seed: int, rate: float = RATE) -> None:
        super().__init__(name="writer", daemon=True)
        self.path = path
        self.events = events
        self.seed = seed
        self.rate = rate
        self.rotated_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:
            self.error = exc

    def _write(self) -> None:
        started = time.monotonic()
        out = self.path.open("ab")
        try:
            for index, record in enumerate(iter_events(self.events, self.seed)):
                out = self.rotate(index, out)
                out.write(orjson.dumps(record) + b"\n")
                if index % 50 == 0:
                    out.flush()
                    delay = started + index / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        finally:
            out.close()

    def rotate(self, index: int, out: BinaryIO) -> BinaryIO:
        """Before line ``index``: rename the file half-way; the handle to write on next."""
        if index != self.events // 2:
            return out
        out.close()
        self.path.rename(self.path.with_name(self.path.name + ".1"))
        self.rotated_at = time.monotonic()
        return self.path.open("ab")


def roll_over(es: Elasticsearch, namespace: str) -> None:
    """Start new backing indices, so a replayed create could not see the old ids by itself."""
    for target in targets(namespace):
        try:
            es.indices.rollover(alias=target)
        except ApiError:
            continue  # not created yet


class TestCrash:
    def test_sigkill_during_writes_and_rotation(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """Six SIGKILLs (with rollovers between) while 30,000 events are written and the file
        renamed: the index ends with every normalized event exactly once."""
        seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        logs = tmp_path / "logs"
        logs.mkdir()
        log_file = logs / "audit.log"
        log_file.touch()
        common = {
            "es_url": es_url,
            "namespace": namespace,
            "state_dir": tmp_path / "state",
            "env": {"APPMIXER_AUDIT_BATCH_MAX_EVENTS": "400"},
        }
        writer = Writer(log_file, EVENTS, seed)
        writer.start()
        kills: list[float] = []
        for number in range(KILLS):
            agent = Agent([f"{logs}/audit.log*"], **common)  # type: ignore[arg-type]
            time.sleep(rng.uniform(1.5, 5.0))
            assert agent.alive(), agent.tail()
            agent.kill()
            kills.append(round(time.monotonic(), 2))
            if number % 2 == 1:
                roll_over(es, namespace)
        writer.join(timeout=120)
        assert writer.error is None
        assert writer.rotated_at is not None
        final = Agent([f"{logs}/audit.log*"], **common)  # type: ignore[arg-type]
        expected = expected_from([logs / "audit.log.1", log_file], namespace)
        assert len(expected.event_ids) == EVENTS
        events_target, changes_target = targets(namespace)
        assert wait_for_count(es, events_target, EVENTS, 240, final) >= EVENTS
        assert wait_for_count(es, changes_target, expected.changes, 60, final) >= expected.changes
        assert final.terminate() == 0, final.tail()
        print(f"crash seed={seed} kills={len(kills)} events={EVENTS} changes={expected.changes}")
        assert_exactly_once(es, namespace, expected)
        replays = [e for e in final.events() if e.get("event") == "pipeline_started"]
        assert replays
        assert replays[0]["paths"] == [f"{logs}/audit.log*"]
