"""Clusters the agent does not support, and refusals no retry can change: one line, at start.

Real servers each time: Elasticsearch 7.17.29 and OpenSearch 2.19.6 from their integ-test
zips on Maven Central (``dev-es start --version``), a plain HTTP server that is not
Elasticsearch at all, a URL whose path leads nowhere on a real node (400), and a credential
refused by the secured node. Each command ends at once with one line on stderr naming what
was found and what is supported (exit 2), or the request and the node's reason (exit 1);
nothing is retried forever and nothing is written.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from devtools.devnode import DevNode
from devtools.simulate import write_events
from tests.esnode import PORT_OFFSET, SecureNode
from tests.system.conftest import cli

pytestmark = pytest.mark.system

SUPPORTED = "appmixer-audit supports Elasticsearch 8.12 or newer 8.x, and 9.x"


def said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines on stderr that are not the agent's JSON log events."""
    lines = []
    for line in result.stderr.splitlines():
        try:
            if isinstance(orjson.loads(line), dict):
                continue
        except orjson.JSONDecodeError:
            pass
        lines.append(line)
    return lines


@pytest.fixture(scope="module")
def foreign_node(request: pytest.FixtureRequest) -> Iterator[DevNode]:
    """A node of the version the test names, started for this module and stopped after."""
    version, name, port = request.param
    node = DevNode(
        f"{name}-{PORT_OFFSET}" if PORT_OFFSET else name,
        port + PORT_OFFSET,
        port + 100 + PORT_OFFSET,
        heap="512m",
        version=version,
    )
    node.stop()
    node.wipe()
    node.start(timeout=240)
    try:
        yield node
    finally:
        node.stop()


FOREIGN = [
    pytest.param(("7.17.29", "pytest-es7", 9270), id="elasticsearch-7.17.29"),
    pytest.param(("opensearch-2.19.6", "pytest-opensearch2", 9271), id="opensearch-2.19.6"),
]


def backlog(folder: Path) -> Path:
    log_file = folder / "audit.log"
    with log_file.open("wb") as out:
        write_events(out, 20, seed=5)
    return log_file


@pytest.mark.parametrize("foreign_node", FOREIGN, indirect=True)
class TestUnsupportedClusters:
    def test_every_command_refuses_in_one_line(self, foreign_node: DevNode, tmp_path: Path) -> None:
        """run, run --once, setup, search, show and verify: exit 2, one line that names the
        product and version found and the supported range; nothing is created there."""
        expected_found = {
            "elasticsearch": f"runs Elasticsearch {foreign_node.version}",
            "opensearch": f"is OpenSearch {foreign_node.version}, not Elasticsearch",
        }[foreign_node.flavor.product]
        log_file = backlog(tmp_path)
        url = foreign_node.url
        state = ["--state-dir", str(tmp_path / "state")]
        commands = [
            ["run", "--once", "--path", str(log_file), *state],
            ["run", "--path", str(log_file), *state],
            ["setup"],
            ["search"],
            ["show", "0123456789abcdef"],
            ["verify"],
        ]
        for command in commands:
            result = cli(*command, "--es-url", url)
            lines = said(result)
            assert result.returncode == 2, (command, result.stderr)
            # verify may first say which keys it was given; the refusal is the last line.
            notices = 1 if command == ["verify"] else 0
            assert len(lines) == 1 + notices, (command, result.stderr)
            assert lines[-1] == f"appmixer-audit: {url} {expected_found}; {SUPPORTED}", (
                command,
                result.stderr,
            )
        indices = _index_names(url)
        assert not [name for name in indices if "appmixer" in name], indices


def _index_names(url: str) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_cat/indices?format=json") as answer:
        return [row["index"] for row in orjson.loads(answer.read())]


class _NotElasticsearch(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok", "service": "something else"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def not_elasticsearch() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotElasticsearch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class TestNotElasticsearch:
    def test_a_server_that_does_not_say_it_is_elasticsearch(
        self, not_elasticsearch: str, tmp_path: Path
    ) -> None:
        """A JSON server without X-Elastic-Product: exit 2 at start, one line."""
        log_file = backlog(tmp_path)
        state = ["--state-dir", str(tmp_path / "state")]
        for command in (["run", "--once", "--path", str(log_file), *state], ["search"]):
            result = cli(*command, "--es-url", not_elasticsearch)
            assert result.returncode == 2, result.stderr
            lines = said(result)
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith(f"appmixer-audit: {not_elasticsearch} is a server"), lines
            assert lines[0].endswith(SUPPORTED)


class TestPermanentRefusals:
    def test_a_400_at_setup_ends_run_in_one_line(self, es_url: str, tmp_path: Path) -> None:
        """A URL whose path the node has no handler for (a proxy prefix given by mistake):
        the node answers 400 to the first set-up request. run --once and run end with exit 1
        and one line naming the request and the node's reason, instead of retrying."""
        log_file = backlog(tmp_path)
        url = f"{es_url}/elasticsearch"
        for once in (["--once"], []):
            result = cli(
                "run", *once, "--path", str(log_file), "--state-dir", str(tmp_path / "state"),
                "--es-url", url,
            )  # fmt: skip
            assert result.returncode == 1, result.stderr
            lines = said(result)
            assert len(lines) == 1, result.stderr
            refused = f"Elasticsearch at {url}: GET /_nodes/_local was refused (HTTP 400): "
            assert lines[0].startswith(f"appmixer-audit: {refused}"), lines
            assert "no handler found for uri" in lines[0]

    def test_a_refused_credential_given_as_a_value_ends_run(
        self, secure_es: SecureNode, tmp_path: Path
    ) -> None:
        """An API key given as a value cannot change under the running agent: a 401 at start
        is one line and exit 1. (From a followed file it is one error, and the agent waits
        for a valid key there: tests/system/test_secure_shipping.py.)"""
        log_file = backlog(tmp_path)
        env = {
            "APPMIXER_AUDIT_ES_URL": secure_es.url,
            "APPMIXER_AUDIT_ES_CA_CERTS": str(secure_es.ca_certs),
            "APPMIXER_AUDIT_ES_API_KEY": "bm90LWEta2V5Om5vdC1hLXNlY3JldA==",
        }
        result = cli(
            "run", "--once", "--path", str(log_file), "--state-dir", str(tmp_path / "state"),
            env=env,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        lines = said(result)
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(
            f"appmixer-audit: Elasticsearch at {secure_es.url}: GET /_nodes/_local was refused "
            "(HTTP 401): "
        ), lines
        assert "bm90LWEta2V5" not in result.stderr
