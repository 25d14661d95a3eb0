"""The bulk sink and the replay check against a real node: every document gets a typed fate."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from agent.config import Settings
from agent.pipeline import wire
from common.retry import Retrier, RetryPolicy
from devtools.simulate import write_events
from indexer.setup import install
from indexer.sink import BulkSink, Delivered, Duplicate, Refused, Retry, Shipment

pytestmark = [pytest.mark.integration, pytest.mark.compat]


class Observer:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.retries: dict[str, int] = {}

    def observe_bulk(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def retry(self, reason: str, n: int = 1) -> None:
        self.retries[reason] = self.retries.get(reason, 0) + n


def settings_for(es_url: str, namespace: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        es_url=[es_url],
        namespace=namespace,
        state_dir=tmp_path / "state",
        host_name="sink-test",
        **extra,
    )


@pytest.fixture
def settings(es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path) -> Settings:
    value = settings_for(es_url, namespace, tmp_path)
    install(es, value.events_target, value.changes_target)
    return value


def event(n: int, *, timestamp: str = "2026-11-25T09:00:00.000Z") -> dict[str, Any]:
    return {
        "@timestamp": timestamp,
        "message": "Flow Updated",
        "event": {"id": f"ev-{n}", "action": "flow.updated", "kind": "event"},
        "user": {"email": f"user{n}@acme.example"},
    }


def change(n: int, i: int, *, timestamp: str = "2026-11-25T09:00:00.000Z") -> dict[str, Any]:
    return {
        "@timestamp": timestamp,
        "event": {"id": f"ev-{n}", "kind": "enrichment", "action": "flow.updated"},
        "appmixer": {"change": {"path": f"/flow/a{i}", "op": "replace", "old": "1", "new": "2"}},
    }


def shipments(count: int, *, changes: int = 2, verify: bool = False) -> list[Shipment[int]]:
    return [
        Shipment.of(
            n,
            f"ev-{n}",
            event(n),
            [(f"ev-{n}-c{i}", change(n, i)) for i in range(changes)],
            verify=verify,
        )
        for n in range(count)
    ]


def count(es: Elasticsearch, target: str) -> int:
    es.indices.refresh(index=target)
    return int(es.count(index=target)["count"])


def make_sink(es: Elasticsearch, settings: Settings, **kwargs: Any) -> BulkSink:
    return BulkSink(es, settings.events_target, settings.changes_target, **kwargs)


class TestBulkSink:
    def test_created_then_409_on_replay(self, es: Elasticsearch, settings: Settings) -> None:
        """First delivery creates events and change docs; the same batch again is all 409s."""
        observer = Observer()
        sink = make_sink(es, settings, observer=observer)
        first = sink.ship(shipments(20))
        assert all(isinstance(r.outcome, Delivered) and r.acknowledged for r in first)
        assert sum(r.changes_delivered for r in first) == 40
        assert count(es, settings.events_target) == 20
        assert count(es, settings.changes_target) == 40
        again = sink.ship(shipments(20))
        assert all(isinstance(r.outcome, Duplicate) and r.acknowledged for r in again)
        assert count(es, settings.events_target) == 20
        assert count(es, settings.changes_target) == 40
        assert len(observer.latencies) == 2

    def test_ingested_set_at_send_time(self, es: Elasticsearch, settings: Settings) -> None:
        """event.ingested is the ship time, stored with the rest of the event unchanged."""
        before = datetime.now(UTC) - timedelta(seconds=1)
        make_sink(es, settings).ship(shipments(1, changes=0))
        es.indices.refresh(index=settings.events_target)
        doc = es.search(index=settings.events_target, query={"ids": {"values": ["ev-0"]}})
        source = doc["hits"]["hits"][0]["_source"]
        ingested = datetime.fromisoformat(source["event"]["ingested"].replace("Z", "+00:00"))
        assert before <= ingested <= datetime.now(UTC) + timedelta(seconds=1)
        assert source["event"]["action"] == "flow.updated"
        assert source["user"]["email"] == "user0@acme.example"

    def test_mapping_conflict_rejected_while_neighbours_are_indexed(
        self, es: Elasticsearch, settings: Settings
    ) -> None:
        """A document the mapping refuses is Refused with Elasticsearch's reason; others land."""
        batch = shipments(5, changes=0)
        batch[2] = Shipment.of(2, "ev-2", event(2, timestamp="the day after tomorrow"))
        results = make_sink(es, settings).ship(batch)
        outcomes = [r.outcome for r in results]
        assert [type(o) for o in outcomes] == [Delivered, Delivered, Refused, Delivered, Delivered]
        refused = outcomes[2]
        assert isinstance(refused, Refused)
        assert refused.status == 400
        assert "parsing" in refused.error_type
        assert "@timestamp" in refused.reason
        assert results[2].acknowledged
        es.indices.refresh(index=settings.events_target)
        found = es.search(index=settings.events_target, size=10, source=False)
        assert sorted(hit["_id"] for hit in found["hits"]["hits"]) == [
            "ev-0",
            "ev-1",
            "ev-3",
            "ev-4",
        ]

    def test_rejected_change_doc_still_acknowledges_the_event(
        self, es: Elasticsearch, settings: Settings
    ) -> None:
        """A refused change document is reported for dead-lettering; its event still ships."""
        bad = Shipment.of(
            7,
            "ev-7",
            event(7),
            [("ev-7-c0", change(7, 0)), ("ev-7-c1", change(7, 1, timestamp="nonsense"))],
        )
        (result,) = make_sink(es, settings).ship([bad])
        assert isinstance(result.outcome, Delivered)
        assert result.acknowledged
        assert result.changes_delivered == 1
        assert [cid for cid, _ in result.rejected_changes] == ["ev-7-c1"]
        assert count(es, settings.changes_target) == 1

    def test_unreachable_node_is_retried_until_interrupted(self, settings: Settings) -> None:
        """Connection errors are retried (never dropped) and stop only when interrupted."""
        dead = Elasticsearch("http://127.0.0.1:9", request_timeout=1, max_retries=0)
        interrupt = threading.Event()
        observer = Observer()
        sink = make_sink(
            dead,
            settings,
            observer=observer,
            retrier=Retrier(RetryPolicy(base=0.05, cap=0.2), interrupt),
        )
        threading.Timer(1.5, interrupt.set).start()
        results = sink.ship(shipments(3, changes=1))
        assert all(isinstance(r.outcome, Retry) and not r.acknowledged for r in results)
        assert observer.retries  # counted, with the reason
        assert all("connection" in reason for reason in observer.retries)


class TestReplayAcrossRollover:
    def test_verified_replay_after_rollover_finds_existing_documents(
        self, es: Elasticsearch, settings: Settings
    ) -> None:
        """After a rollover, create alone would duplicate; the replay check does not."""
        sink = make_sink(es, settings)
        sink.ship(shipments(10))
        for target in (settings.events_target, settings.changes_target):
            es.indices.rollover(alias=target)
        verified = sink.ship(shipments(10, verify=True))
        assert all(isinstance(r.outcome, Duplicate) for r in verified)
        assert count(es, settings.events_target) == 10
        assert count(es, settings.changes_target) == 20
        # The hole the check closes: unverified creates land in the new backing index.
        sink.ship(shipments(3, changes=0))
        assert count(es, settings.events_target) == 13

    def test_pipeline_replays_its_window_without_duplicates(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """A restart whose window [acked, sent) was indexed before a rollover adds nothing."""
        log_file = tmp_path / "audit.log"
        with log_file.open("wb") as out:
            write_events(out, 300, seed=4)
        settings = settings_for(
            es_url, namespace, tmp_path, paths=[str(log_file)], batch_max_events=50
        )
        install(es, settings.events_target, settings.changes_target)
        first = wire(settings, es, once=True)
        first.start()
        assert first.wait(120)
        first.close()
        assert first.metrics.snapshot().shipped == 300
        events, changes = count(es, settings.events_target), count(es, settings.changes_target)
        assert events == 300
        # The crash the window exists for: everything sent, nothing acknowledged yet.
        registry_file = settings.state_dir / "registry.json"
        state = orjson.loads(registry_file.read_bytes())
        for entry in state["files"]:
            entry["sent"], entry["acked"] = entry["acked"], 0
        registry_file.write_bytes(orjson.dumps(state))
        for target in (settings.events_target, settings.changes_target):
            es.indices.rollover(alias=target)
        second = wire(settings, es, once=True)
        assert second.settler.replaying
        second.start()
        assert second.wait(120)
        second.close()
        counts = second.metrics.snapshot()
        assert (counts.read, counts.duplicates, counts.shipped) == (300, 300, 0)
        assert second.settler.sink.transport.dedup.lookups >= 1  # type: ignore[attr-defined]
        assert count(es, settings.events_target) == events
        assert count(es, settings.changes_target) == changes
