"""`appmixer-audit dev-es` provisions a real node, reuses it, and stops only what it started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devtools.devnode import DevNode, find_java
from tests.esnode import node_ports

pytestmark = pytest.mark.system

NAME, HTTP, TRANSPORT = node_ports("clitest", 9262, 9362)
SPARE_HTTP, SPARE_TRANSPORT = node_ports("spare", 9263, 9363)[1:]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "dev-es", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def node_args() -> list[str]:
    return ["--name", NAME, "--port", str(HTTP), "--transport-port", str(TRANSPORT)]


def java_processes_for(node: DevNode) -> list[int]:
    """Every live process whose environment points at this node's config."""
    marker = f"ES_PATH_CONF={node.config_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class TestDevEsCommand:
    def test_start_reuse_status_stop(self) -> None:
        """start prints a healthy URL last, a second start reuses it, stop leaves nothing."""
        node = DevNode(NAME, HTTP, TRANSPORT)
        node.stop()
        try:
            first = cli("start", *node_args(), "--heap", "512m")
            assert first.returncode == 0, first.stderr
            url = first.stdout.strip().splitlines()[-1]
            assert url == f"http://127.0.0.1:{HTTP}"
            with urllib.request.urlopen(url + "/_cluster/health", timeout=10) as response:
                health = json.load(response)
            assert health["status"] in {"green", "yellow"}
            pid = node.pid()
            assert pid is not None

            second = cli("start", *node_args())
            assert second.returncode == 0, second.stderr
            assert second.stdout.strip().splitlines()[-1] == url
            assert node.pid() == pid, "a second start must reuse the running node"

            status = cli("status", *node_args(), "--format", "json")
            assert status.returncode == 0
            report = json.loads(status.stdout)
            assert report["healthy"] is True
            assert report["features"]["version"]
            assert set(report["features"]) >= {"data_streams", "lifecycle", "security"}
        finally:
            stopped = cli("stop", *node_args())
        assert stopped.returncode == 0
        assert java_processes_for(node) == []
        after = cli("status", *node_args())
        assert after.returncode == 1

    def test_stop_when_not_running(self) -> None:
        """stop on a node that is not running says so and succeeds."""
        result = cli(
            "stop",
            "--name",
            "never-started",
            "--port",
            str(SPARE_HTTP),
            "--transport-port",
            str(SPARE_TRANSPORT),
        )
        assert result.returncode == 0
        assert result.stdout.strip() == "not running"

    def test_port_in_use_is_a_clear_error(self) -> None:
        """Starting on a port another process holds fails with a one-line reason."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = str(holder.getsockname()[1])
            result = cli(
                "start",
                "--name",
                "clash",
                "--port",
                port,
                "--transport-port",
                str(SPARE_TRANSPORT + 1),
            )
        assert result.returncode == 1
        assert f"port {port} is already in use" in result.stderr


class TestJavaSelection:
    def test_picks_a_java_new_enough(self) -> None:
        """The chosen JDK is Java 21 or newer, as Elasticsearch 9 requires."""
        home = find_java()
        release = (home / "release").read_text()
        major = int(release.split('JAVA_VERSION="')[1].split(".")[0])
        assert major >= 21

    def test_too_old_java_is_reported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Asking for an impossible Java names what was found instead of failing obscurely."""
        from devtools.devnode import DevNodeError

        monkeypatch.setitem(os.environ, "ES_JAVA_HOME", "/nonexistent")
        with pytest.raises(DevNodeError, match="needs Java 99 or newer; found:"):
            find_java(minimum=99)
