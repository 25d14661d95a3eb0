"""`appmixer-audit dev-es` provisions a real node, reuses it, and stops only what it started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from devtools.devnode import DevNode, find_java, processes_with
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
    return processes_with("environ", f"ES_PATH_CONF={node.config_dir}".encode())


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

            # By name alone: the node's own port and version, not the defaults.
            by_name = cli("status", "--name", NAME, "--format", "json")
            assert by_name.returncode == 0, by_name.stderr
            named = json.loads(by_name.stdout)
            assert named["url"] == url
            assert named["version"] == named["features"]["version"]
        finally:
            stopped = cli("stop", *node_args())
        assert stopped.returncode == 0
        assert java_processes_for(node) == []
        after = cli("status", *node_args())
        assert after.returncode == 1

    def test_start_another_version(self) -> None:
        """``--version 8.19.8``: that release, fetched and cached on its own, started on a
        JDK it supports; status by name alone reports its version and port; stop ends it."""
        name, http, transport = node_ports("clitest-8", 9264, 9364)
        args = ["--name", name, "--port", str(http), "--transport-port", str(transport)]
        node = DevNode(name, http, transport)
        node.stop()
        node.wipe()
        try:
            started = cli("start", *args, "--version", "8.19.8", "--heap", "512m")
            assert started.returncode == 0, started.stderr
            assert started.stdout.strip().splitlines()[-1] == f"http://127.0.0.1:{http}"
            status = cli("status", "--name", name, "--format", "json")
            assert status.returncode == 0, status.stderr
            report = json.loads(status.stdout)
            assert report["version"] == "8.19.8"
            assert report["features"]["version"] == "8.19.8"
            assert report["url"] == f"http://127.0.0.1:{http}"
            again = cli("start", "--name", name, "--version", "9.5.4")
            assert again.returncode == 0, "a running node is reused, whatever is asked"
            assert DevNode(name).version == "8.19.8"
        finally:
            assert cli("stop", "--name", name).returncode == 0
        refused = cli("start", "--name", name, "--version", "9.5.4")
        assert refused.returncode == 1
        assert "holds the data of elasticsearch-8.19.8" in refused.stderr
        node.wipe()

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

    def test_8x_before_8_18_gets_a_java_with_the_security_manager(self) -> None:
        """Elasticsearch 8.12 needs the security manager, removed in Java 24: the newest JDK
        from 17 to 23 is chosen even where a newer one is installed."""
        from devtools.devnode import Flavor

        home = find_java(Flavor.parse("8.12.2"))
        release = (home / "release").read_text()
        major = int(release.split('JAVA_VERSION="')[1].split(".")[0])
        assert 17 <= major <= 23

    def test_too_old_java_is_reported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Asking for an impossible Java names what was found instead of failing obscurely."""
        from devtools.devnode import DevNodeError, Flavor

        monkeypatch.setitem(os.environ, "ES_JAVA_HOME", "/nonexistent")
        monkeypatch.setattr(Flavor, "java_range", property(lambda _self: (99, None)))
        with pytest.raises(DevNodeError, match="needs Java 99 or newer; found:"):
            find_java(Flavor.parse("9.5.4"))
