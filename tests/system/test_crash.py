"""kill -9 at random moments while a writer appends and rotates: every event exactly once."""

from __future__ import annotations

import os
import random
import threading
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pytest
from elasticsearch import ApiError, Elasticsearch
from structlog.testing import capture_logs

from devtools.simulate import iter_events
from indexer.inflight import RequestWatch, opaque_id
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


IN_FLIGHT_EVENTS = 20_000


def bulk_tasks(es: Elasticsearch) -> list[dict[str, Any]]:
    """The bulk tasks the node is executing now."""
    with warnings.catch_warnings():  # the task API is marked "technical preview"
        warnings.simplefilter("ignore")
        listed = es.tasks.list(actions="indices:data/write/bulk*", detailed=True)
    return [task for node in listed.body["nodes"].values() for task in node["tasks"].values()]


def wait_for_bulk(es: Elasticsearch, agent: Agent, timeout: float) -> bool:
    """Whether a bulk request is being executed by the node (the agent's first batch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and agent.alive():
        if bulk_tasks(es):
            return True
        time.sleep(0.02)
    return False


class TestRequestInFlightAtCrash:
    def test_a_killed_runs_request_still_executing_is_not_indexed_twice(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """SIGKILL while the node is still executing the agent's large bulk request, a
        rollover, and a restart at once: the node goes on with the killed run's request
        after its client is gone, so the next run waits for it before its replay check
        (otherwise the check misses what that request is about to write, and the replayed
        creates land in the new backing index beside it). Every event ends up exactly once."""
        logs = tmp_path / "logs"
        logs.mkdir()
        log_file = logs / "audit.log"
        with log_file.open("wb") as out:
            for record in iter_events(IN_FLIGHT_EVENTS, 20261207):
                out.write(orjson.dumps(record) + b"\n")
        one_batch = {
            "APPMIXER_AUDIT_BATCH_MAX_EVENTS": str(IN_FLIGHT_EVENTS),
            "APPMIXER_AUDIT_BATCH_MAX_BYTES": str(100 << 20),
            "APPMIXER_AUDIT_BATCH_MAX_WAIT": "60",
            "APPMIXER_AUDIT_BUFFER_MAX_EVENTS": str(IN_FLIGHT_EVENTS),
            "APPMIXER_AUDIT_BUFFER_MAX_BYTES": str(200 << 20),
        }
        warm = logs / "warm.log"  # shipped first, so the rollover after the kill has targets
        warm.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in iter_events(20, 1207)))
        early = Agent([str(warm)], es_url=es_url, namespace=namespace, state_dir=tmp_path / "s0",
                      once=True)  # fmt: skip
        assert early.wait(300) == 0, early.tail()
        common = {"es_url": es_url, "namespace": namespace, "state_dir": tmp_path / "state"}
        first = Agent([str(log_file)], **common, env=one_batch)  # type: ignore[arg-type]
        assert wait_for_bulk(es, first, 180), first.tail()
        first.kill()
        roll_over(es, namespace)
        final = Agent([str(log_file)], **common)  # type: ignore[arg-type]
        expected = expected_from([warm, log_file], namespace)
        events_target, changes_target = targets(namespace)
        wanted = len(expected.event_ids)
        assert wait_for_count(es, events_target, wanted, 240, final) >= wanted
        assert wait_for_count(es, changes_target, expected.changes, 60, final) >= expected.changes
        assert final.terminate() == 0, final.tail()
        assert_exactly_once(es, namespace, expected)
        runs = orjson.loads((tmp_path / "state" / "registry.json").read_bytes())["runs"]
        assert len(runs) == 2  # the killed run's id was kept for the next one to wait on


class TestRequestWatch:
    def test_waits_for_a_request_of_its_runs_and_only_those(
        self, es: Elasticsearch, namespace: str
    ) -> None:
        """While the node executes a large bulk request sent as run ``r1`` (its client could
        be gone: the node finishes it anyway), a watch on another run returns at once and a
        watch on ``r1`` returns only when every document of that request is stored."""
        index = f"inflight-{namespace}"
        documents = 60_000
        operations: list[dict[str, Any]] = []
        for n in range(documents):
            operations.append({"create": {"_index": index, "_id": str(n)}})
            operations.append({"message": "an audit line " * 20, "n": n})
        sender = threading.Thread(
            target=lambda: es.options(opaque_id=opaque_id("r1"), request_timeout=600).bulk(
                operations=operations
            ),
            daemon=True,
        )
        try:
            sender.start()
            deadline = time.monotonic() + 120
            while not bulk_tasks(es) and time.monotonic() < deadline:
                time.sleep(0.01)
            seen = [task.get("headers", {}).get("X-Opaque-Id") for task in bulk_tasks(es)]
            assert opaque_id("r1") in seen  # still executing: the test has its window
            other = RequestWatch(es, ["r2"])
            assert other.running() == 0
            other.settle()
            assert other.waited == 0
            watch = RequestWatch(es, ["r2", "r1"])
            assert watch.running() > 0
            with capture_logs() as logs:
                watch.settle()
            assert watch.running() == 0
            assert watch.waited > 0
            said = [entry["event"] for entry in logs]  # the wait is announced, then its end
            assert said == ["previous_requests_running", "previous_requests_finished"]
            es.indices.refresh(index=index)
            assert es.count(index=index)["count"] == documents
            sender.join(timeout=120)
        finally:
            es.indices.delete(index=index, ignore_unavailable=True)
