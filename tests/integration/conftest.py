"""Fixtures for the index tests: templates installed, and a namespace filled with known events.

The filled namespace is shared by the read-only search and show tests of a session: shipping
a few hundred events once keeps the node small (on distributions without the _data_stream
API a data stream can never be deleted). Expected results are computed from the normalizer's
output here, never read back from Elasticsearch. The product's templates are left installed
at the end: they serve every namespace, and a template a data stream uses cannot be deleted.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers

from agent.config import Settings
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source
from devtools.simulate import write_events
from indexer.setup import SetupReport, install
from tests.esnode import remove_targets

SAMPLE_CANDIDATES = (Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson",)
SIMULATED_EVENTS = 400
SIMULATED_SEED = 20261125

# Lines no sample spells, so every mapped field is written at least once: an explicit
# target user with a name, a tenant, and a user entity named by a person's name.
EXTRA_LINES = (
    b'{"id":"extra-user-updated","created":"2026-11-25T12:00:00Z","action":"User Updated",'
    b'"email":"admin@acme.example","userId":"u-admin","tenantId":"acme",'
    b'"targetUser":{"id":"u-7","email":"nina@acme.example","name":"Nina Petrova"},'
    b'"before":{"scope":["user"]},"after":{"scope":["user","admin"]}}',
    b'{"id":"extra-user-deleted","created":"2026-11-25T12:01:00Z","action":"User Deleted",'
    b'"email":"admin@acme.example","entity":{"type":"user","id":"u-8","name":"Raj Patel"},'
    b'"before":{"email":"raj@acme.example"}}',
)


def sample_path() -> Path:
    override = os.environ.get("APPMIXER_AUDIT_SAMPLE")
    for candidate in ((Path(override),) if override else ()) + SAMPLE_CANDIDATES:
        if candidate.is_file():
            return candidate
    pytest.fail("the sample audit file is missing (set APPMIXER_AUDIT_SAMPLE to its path)")


def input_lines() -> list[tuple[str, int, bytes]]:
    """(file, offset, line) for the sample, a seeded simulated file, and the extra lines."""
    simulated = io.BytesIO()
    write_events(simulated, SIMULATED_EVENTS, seed=SIMULATED_SEED, noise=0.05)
    found: list[tuple[str, int, bytes]] = []
    for name, data in (
        ("sample.ndjson", sample_path().read_bytes()),
        ("simulated.ndjson", simulated.getvalue()),
        ("extra.ndjson", b"\n".join(EXTRA_LINES) + b"\n"),
    ):
        offset = 0
        for line in data.splitlines(keepends=True):
            found.append((name, offset, line))
            offset += len(line)
    return found


def normalize_all(namespace: str) -> list[Normalized]:
    normalizer = Normalizer(NormalizeOptions(namespace=namespace, host_name="test-host"))
    results = []
    for name, offset, line in input_lines():
        outcome = normalizer(line, Source(f"/logs/{name}", name, offset, "test-host"))
        if isinstance(outcome, Normalized):
            results.append(outcome)
    return results


def ship(es: Elasticsearch, settings: Settings, events: list[Normalized]) -> None:
    """Bulk-create events and their change documents, ids as the agent uses them."""
    actions: list[dict[str, Any]] = []
    for item in events:
        actions.append(
            {"_op_type": "create", "_index": settings.events_target, "_id": item.event_id}
            | {"_source": item.event}
        )
        for change_id, change in item.changes:
            actions.append(
                {"_op_type": "create", "_index": settings.changes_target, "_id": change_id}
                | {"_source": change}
            )
    ok, errors = helpers.bulk(es, actions, raise_on_error=False, refresh="wait_for")
    assert errors == [], errors[:3]
    assert ok == len(actions)


def make_settings(es_url: str, namespace: str) -> Settings:
    return Settings(es_url=[es_url], namespace=namespace)


def targets(namespace: str) -> tuple[str, str]:
    """The events and changes data streams of ``namespace``, as ``install`` takes them."""
    settings = Settings(namespace=namespace)
    return settings.events_target, settings.changes_target


@pytest.fixture(scope="session")
def installed(es: Elasticsearch, es_url: str) -> SetupReport:
    """The product's templates, installed once for the session (they serve every namespace)."""
    report = install(es, *targets("default"))
    assert report.ok, report.lines()
    return report


@dataclass
class Shipped:
    """A namespace holding the sample and simulated events, and what was put into it."""

    settings: Settings
    events: list[Normalized]
    by_id: dict[str, Normalized] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def cli(self) -> list[str]:
        return ["--es-url", self.settings.es_url[0], "--namespace", self.namespace]


@pytest.fixture(scope="session")
def shipped(es: Elasticsearch, es_url: str, installed: SetupReport) -> Iterator[Shipped]:
    namespace = "t" + uuid.uuid4().hex[:10]
    settings = make_settings(es_url, namespace)
    events = normalize_all(namespace)
    ship(es, settings, events)
    yield Shipped(settings, events, {item.event_id: item for item in events})
    remove_targets(es, namespace)
