"""How a dev node's start tells a slow launch from a dead one (real processes, no node).

7.x and OpenSearch return from ``-d`` before the JVM writes its pid file; on a loaded machine
that can take longer than any fixed grace, and a start that gave up early failed a run whose
node was fine, and so did a poll that found the pid file created but not yet written. The
launch is alive while a process carries ``-p <pid file>``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.devnode import DevNode, DevNodeError


@pytest.fixture
def node(tmp_path: Path) -> DevNode:
    return DevNode("launch-probe", 59990, 59991, root=tmp_path, version="7.17.29")


@pytest.fixture
def launcher(node: DevNode) -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for the JVM of a daemonized node: a process with our ``-p`` argument."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-d", "-p", str(node.pid_file)]
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_process_with_our_pid_file_argument_is_a_launch_under_way(
    node: DevNode, launcher: subprocess.Popen[bytes]
) -> None:
    expired = time.monotonic() - 1.0
    assert node._launching(expired) is True


def test_no_such_process_means_the_launch_ended(node: DevNode) -> None:
    assert node._launching(time.monotonic() + 30.0) is False


def test_a_pid_file_not_written_yet_is_a_launch_under_way(
    node: DevNode, launcher: subprocess.Popen[bytes]
) -> None:
    """The JVM creates the file, then writes its pid: an empty file is not a dead node."""
    node.pid_file.parent.mkdir(parents=True, exist_ok=True)
    node.pid_file.write_text("")
    assert node.is_running() is False
    assert node._launching(time.monotonic() - 1.0) is True


def test_a_pid_file_that_names_no_live_node_and_no_launcher_is_a_death(node: DevNode) -> None:
    node.pid_file.parent.mkdir(parents=True, exist_ok=True)
    node.pid_file.write_text("999999\n")
    assert node._launching(time.monotonic() + 30.0) is False
    with pytest.raises(DevNodeError, match="stopped while starting"):
        node._wait(5.0, healthy=True)


def test_another_nodes_launch_does_not_count(tmp_path: Path, launcher: object) -> None:
    other = DevNode("other-probe", 59992, 59993, root=tmp_path, version="7.17.29")
    assert other._launching(time.monotonic() - 1.0) is False


def test_waiting_past_the_grace_on_a_slow_launch_reports_the_timeout_not_a_death(
    node: DevNode, launcher: subprocess.Popen[bytes]
) -> None:
    with pytest.raises(DevNodeError, match="did not answer within"):
        node._wait(1.5, healthy=True)


def test_a_dead_launch_names_the_nodes_own_log(node: DevNode) -> None:
    logs = node.home / "logs"
    logs.mkdir(parents=True)
    node.console_log.write_text("warning: no-jdk distributions are deprecated\n")
    (logs / "launch-probe.log").write_text("[ERROR] bootstrap checks failed\nmax map count\n")
    with pytest.raises(DevNodeError) as raised:
        node._wait(5.0, healthy=True)
    message = str(raised.value)
    assert "stopped while starting" in message
    assert "bootstrap checks failed" in message
    assert "launch-probe.log" in message
