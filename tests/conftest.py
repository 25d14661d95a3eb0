"""Session-wide fixtures: a real Elasticsearch node and per-test isolation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import ApiError, Elasticsearch

from tests.esnode import provide_es_url


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """URL of a real node: ES_URL if given, else testcontainers, else the dev node."""
    with provide_es_url(os.environ) as url:
        yield url


@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, es: Elasticsearch) -> Iterator[str]:
    """A namespace of its own per test, so tests share one node; cleaned afterwards."""
    name = "t" + uuid.uuid4().hex[:10]
    yield name
    if os.environ.get("APPMIXER_AUDIT_KEEP_TEST_DATA") == "1":
        return
    for target in (f"logs-appmixer.audit-{name}", f"logs-appmixer.audit_changes-{name}"):
        # Best effort: a plain index goes; a data stream goes only where the _data_stream
        # API exists (the session's own dev node is wiped at the next session's start).
        for path in (f"/_data_stream/{target}", f"/{target}"):
            try:
                es.perform_request("DELETE", path, headers={"accept": "application/json"})
            except ApiError:
                continue
