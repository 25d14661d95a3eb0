"""Session-wide fixtures: a real Elasticsearch node and per-test isolation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from indexer.client import build_client
from tests import builds
from tests.esnode import SecureNode, provide_es_url, remove_targets, secure_dev_node

# Before any test starts a process: the agents of this session run the build asked for.
AGENT_BUILD = builds.select()


def pytest_report_header() -> str:
    return f"agent processes run the {AGENT_BUILD} build of the per-line path ({builds.BUILD_VAR})"


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """URL of a real node: ES_URL if given, else testcontainers, else the dev node."""
    with provide_es_url(os.environ) as url:
        yield url


@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[Elasticsearch]:
    client = build_client([es_url], timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def secure_es() -> Iterator[SecureNode]:
    """A second, secured node (HTTPS, superuser, API keys), started only when a test asks."""
    with secure_dev_node() as node:
        yield node


@pytest.fixture(scope="session")
def secure_admin(secure_es: SecureNode) -> Iterator[Elasticsearch]:
    """The secured node's superuser client."""
    client = secure_es.client(request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, es: Elasticsearch) -> Iterator[str]:
    """A namespace of its own per test, so tests share one node; cleaned afterwards."""
    name = "t" + uuid.uuid4().hex[:10]
    yield name
    remove_targets(es, name)
