"""A document the node refuses goes to the dead-letter file with Elasticsearch's reason."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from agent.config import Settings
from agent.deadletter import read_dead_letters
from indexer.setup import install
from tests.system.conftest import (
    Agent,
    count,
    event_id_counts,
    parse_summary,
    targets,
)

pytestmark = pytest.mark.system


def product_template(es: Elasticsearch, pattern: str) -> dict[str, Any]:
    """The installed index template whose patterns include ``pattern``."""
    for item in es.indices.get_index_template(name="*")["index_templates"]:
        if pattern in item["index_template"]["index_patterns"]:
            return dict(item["index_template"])
    raise AssertionError(f"no index template for {pattern}")


def highest_priority(es: Elasticsearch, name: str) -> int:
    """The highest priority among the index templates that would match ``name``."""
    priorities = [
        int(item["index_template"].get("priority", 0))
        for item in es.indices.get_index_template(name="*")["index_templates"]
        if any(fnmatch(name, pattern) for pattern in item["index_template"]["index_patterns"])
    ]
    return max(priorities, default=0)


def provoke_conflict(es: Elasticsearch, namespace: str) -> None:
    """For this namespace only: the product template, but ``appmixer.flow.id`` is a long.

    A higher-priority template on the exact data stream name, so no other test's indices
    change; flow ids that are not numbers then fail to parse: a real mapping conflict.
    """
    events = targets(namespace)[0]
    installed = product_template(es, "logs-appmixer.audit-*")
    keep = ("composed_of", "template", "data_stream", "ignore_missing_component_templates")
    template = {key: installed[key] for key in keep if key in installed}
    template["index_patterns"] = [events]
    template["priority"] = highest_priority(es, events) + 1
    body = template.setdefault("template", {})
    mappings = body.setdefault("mappings", {})
    properties = mappings.setdefault("properties", {})
    properties["appmixer"] = {"properties": {"flow": {"properties": {"id": {"type": "long"}}}}}
    es.indices.put_index_template(name=f"test-conflict-{namespace}", **template)


def record(n: int, flow_id: str | None) -> bytes:
    value: dict[str, Any] = {
        "id": f"rej-{n}",
        "created": f"2026-11-25T10:{n // 60:02d}:{n % 60:02d}.000Z",
        "action": "Flow Updated",
        "email": "maria.novak@acme.example",
        "before": {"stage": "stopped"},
        "after": {"stage": "running"},
    }
    if flow_id is not None:
        value["flowId"] = flow_id
    return orjson.dumps(value) + b"\n"


class TestRejection:
    def test_mapping_conflict_is_dead_lettered_and_neighbours_indexed(
        self, es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path
    ) -> None:
        """The refused event lands in the DLQ with ES's type and reason; run --once exits 3."""
        target = Settings(es_url=[es_url], namespace=namespace)
        install(es, target.events_target, target.changes_target)
        provoke_conflict(es, namespace)
        log_file = tmp_path / "audit.log"
        lines = [record(n, str(1000 + n)) for n in range(10)]
        lines[4] = record(4, "9c4673d7-a550-45a2-91c1-ad057fac0385")
        lines.insert(7, record(99, None))
        log_file.write_bytes(b"".join(lines))
        dlq = tmp_path / "dlq"
        try:
            agent = Agent(
                [str(log_file)], es_url=es_url, namespace=namespace,
                state_dir=tmp_path / "state", dlq_dir=dlq, once=True,
            )  # fmt: skip
            assert agent.wait(120) == 3, agent.tail()
        finally:
            es.indices.delete_index_template(name=f"test-conflict-{namespace}")
        summary = parse_summary(agent.stdout())
        assert (summary["shipped"], summary["dead-lettered"]) == (10, 1)
        events, changes = targets(namespace)
        assert count(es, events) == 10
        ids = event_id_counts(es, events)
        assert "rej-4" not in ids
        assert set(ids) == {f"rej-{n}" for n in (*range(10), 99)} - {"rej-4"}
        # Change documents go in the same request; the refused event's one is kept, so a
        # re-ingest of the dead letter completes the pair (its change then answers 409).
        assert count(es, changes) == 11
        (letter,) = read_dead_letters(dlq)
        assert letter["stage"] == "index"
        assert letter["event_id"] == "rej-4"
        assert letter["status"] == 400
        assert letter["error_type"] == "document_parsing_exception"
        assert "appmixer.flow.id" in letter["reason"]
        assert "long" in letter["reason"]
        assert letter["line"].encode() + b"\n" == lines[4]
        assert letter["offset"] == sum(len(line) for line in lines[:4])
        assert letter["path"] == str(log_file)
