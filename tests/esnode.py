"""How the test suite finds a real Elasticsearch node.

In order: ``APPMIXER_AUDIT_ES_URL`` or ``ES_URL`` when set; else a testcontainers
Elasticsearch when a Docker engine answers; else the project's own dev node (``dev-es``),
started for the session on its own port. No test ever talks to a fake.

The secured node (HTTPS, the ``elastic`` superuser, API keys) is always the project's own
dev node started with ``security=True``, beside the plain one on ports of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from elasticsearch import ApiError, Elasticsearch


def _port_offset() -> int:
    """Lets several checkouts on one machine run the suite at once without sharing nodes."""
    raw = os.environ.get("APPMIXER_AUDIT_TEST_PORT_OFFSET", "0").strip() or "0"
    return int(raw)


PORT_OFFSET = _port_offset()


def node_ports(name: str, http_port: int, transport_port: int) -> tuple[str, int, int]:
    """A node's name and ports for this run, shifted by ``APPMIXER_AUDIT_TEST_PORT_OFFSET``."""
    if PORT_OFFSET == 0:
        return name, http_port, transport_port
    return f"{name}-{PORT_OFFSET}", http_port + PORT_OFFSET, transport_port + PORT_OFFSET


def test_es_version() -> str:
    """The Elasticsearch version the session's nodes run: ``APPMIXER_AUDIT_TEST_ES_VERSION``
    (the compatibility suite, ``make test-compat``), else the dev node's default."""
    from devtools.devnode import ES_VERSION

    return os.environ.get("APPMIXER_AUDIT_TEST_ES_VERSION", "").strip() or ES_VERSION


def _versioned(name: str) -> str:
    """Nodes of another version get names (so directories) of their own: a node's data
    cannot be opened by an older version."""
    from devtools.devnode import ES_VERSION

    version = test_es_version()
    return name if version == ES_VERSION else f"{name}-v{version.replace('.', '_')}"


TEST_NODE_NAME, TEST_NODE_HTTP_PORT, TEST_NODE_TRANSPORT_PORT = node_ports(
    _versioned("pytest"), 9250, 9350
)
TEST_NODE_HEAP = "1g"
SECURE_NODE_NAME, SECURE_NODE_HTTP_PORT, SECURE_NODE_TRANSPORT_PORT = node_ports(
    _versioned("pytest-secure"), 9256, 9356
)
SECURE_NODE_HEAP = "512m"


@dataclass(frozen=True)
class SecureNode:
    """How to reach the secured node as its superuser: URL, CA file, user, password file."""

    url: str
    ca_certs: Path
    username: str
    password_file: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def env(self, *, api_key_file: Path | None = None) -> dict[str, str]:
        """Settings for a command: the superuser by default, else the key in that file."""
        env = {"APPMIXER_AUDIT_ES_URL": self.url, "APPMIXER_AUDIT_ES_CA_CERTS": str(self.ca_certs)}
        if api_key_file is not None:
            env["APPMIXER_AUDIT_ES_API_KEY_FILE"] = str(api_key_file)
        else:
            env["APPMIXER_AUDIT_ES_USERNAME"] = self.username
            env["APPMIXER_AUDIT_ES_PASSWORD_FILE"] = str(self.password_file)
        return env

    def client(self, *, request_timeout: float = 30.0) -> Elasticsearch:
        """The superuser's client, speaking the node's own API version (8.x or 9.x)."""
        from indexer.client import build_client

        return build_client(
            [self.url],
            ca_certs=self.ca_certs,
            username=self.username,
            password=self.password,
            timeout=request_timeout,
        )


def url_from_env(env: Mapping[str, str]) -> str | None:
    for name in ("APPMIXER_AUDIT_ES_URL", "ES_URL"):
        value = env.get(name, "").strip()
        if value:
            return value.split(",")[0].rstrip("/")
    return None


# The image the testcontainers path runs: Elastic's, unless a locally built one is named
# (tests/container/es-image.sh makes one where no registry serves Elastic's image).
ES_IMAGE_ENV = "APPMIXER_AUDIT_ES_IMAGE"
# What the dev node sets too, so tests behave the same on either kind of node.
CONTAINER_SETTINGS = {
    "ES_JAVA_OPTS": f"-Xms{TEST_NODE_HEAP} -Xmx{TEST_NODE_HEAP}",
    "action.destructive_requires_name": "false",
    "cluster.routing.allocation.disk.threshold_enabled": "false",
}


def docker_answers() -> bool:
    """A Docker engine answers where docker-py looks (``DOCKER_HOST``, else the default
    socket); podman's Docker-compatible socket (``podman system service``) counts."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=10)
    except DockerException:
        return False
    try:
        return bool(client.ping())
    except (DockerException, OSError, ValueError):
        return False
    finally:
        client.close()


def container_image() -> str:
    given = os.environ.get(ES_IMAGE_ENV, "").strip()
    return given or f"docker.elastic.co/elasticsearch/elasticsearch:{test_es_version()}"


@contextmanager
def _container() -> Iterator[str]:
    """A single-node Elasticsearch container for the session, removed at its end.

    The fixture removes the container itself rather than leaving it to testcontainers'
    reaper (Ryuk), which must be disabled (``TESTCONTAINERS_RYUK_DISABLED=true``) where its
    image cannot be pulled. The image tag must carry the version: testcontainers reads the
    major version from it to choose its settings.
    """
    from testcontainers.community.elasticsearch import ElasticSearchContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    container = ElasticSearchContainer(container_image(), mem_limit="2g")
    # Cluster health rather than "/": the integ-test distribution has no handler for "/".
    # A node starts in about 30 s on a quiet machine, several times that on a busy one.
    ready = HttpWaitStrategy(container.port, "/_cluster/health").with_startup_timeout(600)
    container.waiting_for(ready)
    for key, value in CONTAINER_SETTINGS.items():
        container.with_env(key, value)
    try:
        container.start()
        host = container.get_container_host_ip()
        yield f"http://{host}:{container.get_exposed_port(container.port)}"
    finally:
        container.stop()


@contextmanager
def _dev_node() -> Iterator[str]:
    from devtools.devnode import DevNode

    node = DevNode(
        TEST_NODE_NAME,
        TEST_NODE_HTTP_PORT,
        TEST_NODE_TRANSPORT_PORT,
        heap=TEST_NODE_HEAP,
        version=test_es_version(),
    )
    was_running = node.is_running()
    if not was_running:
        # Data streams cannot be deleted on distributions without the _data_stream API, so
        # each session starts from an empty node rather than accumulating old test data.
        node.wipe()
    url = node.start()
    try:
        yield url
    finally:
        # Leave a node someone else started alone; stop the one we started.
        if not was_running and os.environ.get("APPMIXER_AUDIT_KEEP_TEST_NODE") != "1":
            node.stop()


@contextmanager
def secure_dev_node() -> Iterator[SecureNode]:
    """The secured dev node for the session: started (fresh) unless already running."""
    from devtools.devnode import DevNode

    node = DevNode(
        SECURE_NODE_NAME,
        SECURE_NODE_HTTP_PORT,
        SECURE_NODE_TRANSPORT_PORT,
        heap=SECURE_NODE_HEAP,
        version=test_es_version(),
        security=True,
    )
    was_running = node.is_running()
    if not was_running:
        node.wipe()
    url = node.start(timeout=240)
    credentials = node.credentials()
    assert credentials is not None
    try:
        yield SecureNode(url, credentials.ca_certs, credentials.username, credentials.password_file)
    finally:
        if not was_running and os.environ.get("APPMIXER_AUDIT_KEEP_TEST_NODE") != "1":
            node.stop()


def remove_targets(es: Elasticsearch, namespace: str) -> None:
    """Best effort: a plain index goes; a data stream only where the _data_stream API exists.

    (The session's own dev node is wiped at the next session's start instead.)
    """
    if os.environ.get("APPMIXER_AUDIT_KEEP_TEST_DATA") == "1":
        return
    for target in (
        f"logs-appmixer.audit-{namespace}",
        f"logs-appmixer.audit_changes-{namespace}",
        f"appmixer-audit.checkpoints-{namespace}",
    ):
        for path in (f"/_data_stream/{target}", f"/{target}"):
            try:
                es.perform_request("DELETE", path, headers={"accept": "application/json"})
            except ApiError:
                continue


@contextmanager
def provide_es_url(
    env: Mapping[str, str],
    *,
    docker: Callable[[], bool] = docker_answers,
    container: Callable[[], object] = _container,
    dev_node: Callable[[], object] = _dev_node,
) -> Iterator[str]:
    """Yield the URL of a real node, preferring one the environment names."""
    given = url_from_env(env)
    if given is not None:
        yield given
        return
    factory = container if docker() else dev_node
    with factory() as url:  # type: ignore[attr-defined]
        yield url
