"""The testcontainers path of the fixtures (tests/esnode.py), the one users with Docker take:
here through podman's Docker-compatible API socket and a locally built Elasticsearch image.

`make test-testcontainers` runs the whole integration suite on that path; this test pins
that the path picks the engine, gives a working node in a container, and removes it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from devtools.devnode import ES_VERSION
from tests.container.tools import REPO, image_from, podman, podman_env
from tests.esnode import ES_IMAGE_ENV, docker_answers, provide_es_url

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def es_image(podman_ready: None) -> str:
    return image_from(REPO / "tests" / "container" / "es-image.sh")


@pytest.fixture(scope="module")
def docker_host(podman_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """podman's Docker-compatible API on a socket of this test's own."""
    socket = tmp_path_factory.mktemp("podman") / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        env=podman_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert socket.exists(), "podman system service did not open its socket"
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=30)


def _containers_of(image: str) -> list[str]:
    listed = podman("ps", "--all", "--filter", f"ancestor={image}", "--format", "{{.ID}}")
    return listed.stdout.split()


def test_session_node_from_testcontainers(
    es_image: str, docker_host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With an engine answering on DOCKER_HOST, the fixture runs the node in a container,
    the node answers reads and writes, and the container is gone afterwards (no reaper)."""
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.setenv(ES_IMAGE_ENV, es_image)
    # What TESTCONTAINERS_RYUK_DISABLED=true and TESTCONTAINERS_CONNECTION_MODE=docker_host
    # say when set before testcontainers is imported (tests/container/testcontainers.sh).
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    monkeypatch.setattr(
        testcontainers_config, "connection_mode_override", ConnectionMode.docker_host
    )
    assert docker_answers()
    before = set(_containers_of(es_image))

    def no_dev_node() -> None:
        raise AssertionError("the dev node must not be used when an engine answers")

    with provide_es_url({}, dev_node=no_dev_node) as url:
        (started,) = set(_containers_of(es_image)) - before
        es = Elasticsearch(url, request_timeout=60)
        (node,) = es.nodes.info()["nodes"].values()
        assert node["version"] == ES_VERSION
        assert started.startswith(node["name"][:12])  # the node is named after its container
        index = "probe-" + uuid.uuid4().hex[:8]
        es.index(index=index, id="e1", document={"message": "Flow Updated"}, refresh=True)
        found = es.search(index=index, query={"match": {"message": "updated"}})
        assert [hit["_id"] for hit in found["hits"]["hits"]] == ["e1"]
        es.close()
    assert started not in _containers_of(es_image)
