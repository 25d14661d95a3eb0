"""The built image as a sidecar: a writer container appends audit lines to a shared log
directory, the agent's container ships them to the session's real node, `podman stop`
drains it and `podman start` resumes it, and the index holds every event exactly once.

Both containers use the host network to reach the node on 127.0.0.1; the agent's root
filesystem is read-only, as in the Kubernetes manifest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from tests.container.tools import podman
from tests.esnode import PORT_OFFSET
from tests.system.conftest import (
    HOST_NAME,
    assert_exactly_once,
    expected_from,
    targets,
    wait_for_count,
)

pytestmark = pytest.mark.container

UID = "10001"
LOGS = "/var/log/appmixer"
METRICS_PORT = 9345 + PORT_OFFSET  # inside the test run's own range (tests/esnode.py)
FIRST, SECOND, WHILE_STOPPED = 2000, 3000, 1000


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """The shared log directory, writable by the image's user."""
    path = tmp_path / "logs"
    path.mkdir()
    if os.geteuid() == 0:
        os.chown(path, int(UID), int(UID))
    else:
        path.chmod(0o777)
    return path


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Container names for the test; each is removed (with its volumes) afterwards."""
    created: list[str] = []
    yield created
    for name in created:
        podman("rm", "--force", "--volumes", name, check=False)


def _name(names: list[str], role: str) -> str:
    name = f"aa-{role}-{uuid.uuid4().hex[:8]}"
    names.append(name)
    return name


def _write(image: str, log_dir: Path, names: list[str], *args: str, detach: bool) -> str:
    """A writer container appending simulated audit lines to the shared directory."""
    name = _name(names, "writer")
    podman(
        "run",
        *(["--detach"] if detach else []),
        "--name",
        name,
        "--network",
        "none",
        "--no-healthcheck",
        "--volume",
        f"{log_dir}:{LOGS}",
        image,
        "simulate",
        "--out",
        f"{LOGS}/audit.ndjson",
        *args,
        timeout=300,
    )
    return name


def _exit_code(name: str) -> int:
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())


def _log_events(name: str) -> list[dict[str, object]]:
    """The agent's structured log lines (JSON on stderr)."""
    result = podman("logs", name)
    found = []
    for raw in (result.stdout + result.stderr).splitlines():
        try:
            found.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return found


class TestSidecar:
    def test_ships_exactly_once_across_stop_and_start(
        self, image: str, es_url: str, es: Elasticsearch, log_dir: Path, names: list[str]
    ) -> None:
        """Every event reaches the node once, though the agent is stopped mid-stream and
        lines are written while it is down; the process runs as uid 10001 and is healthy."""
        namespace = "ctr" + uuid.uuid4().hex[:8]
        events, _changes = targets(namespace)
        _write(image, log_dir, names, "--events", str(FIRST), "--seed", "5", detach=False)

        agent = _name(names, "agent")
        podman(
            "run",
            "--detach",
            "--name",
            agent,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--health-interval",
            "disable",  # `podman healthcheck run` below runs the image's check on demand
            "--volume",
            f"{log_dir}:{LOGS}:ro",
            "--env",
            f"APPMIXER_AUDIT_ES_URL={es_url}",
            "--env",
            f"APPMIXER_AUDIT_NAMESPACE={namespace}",
            "--env",
            f"APPMIXER_AUDIT_HOST_NAME={HOST_NAME}",
            "--env",
            f"APPMIXER_AUDIT_METRICS_ADDRESS=127.0.0.1:{METRICS_PORT}",
            "--env",
            "APPMIXER_AUDIT_RESCAN_INTERVAL=1",
            "--env",
            "APPMIXER_AUDIT_BATCH_MAX_WAIT=0.2",
            image,
            "run",
            "--path",
            f"{LOGS}/*.ndjson",
        )
        seen = wait_for_count(es, events, FIRST, timeout=180)
        assert seen == FIRST, podman("logs", agent).stderr[-2000:]

        # Not root inside: the agent (PID 1) and an exec'd process both run as 10001.
        status = podman("exec", agent, "cat", "/proc/1/status").stdout
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [UID] * 4
        assert podman("exec", agent, "id", "-u").stdout.strip() == UID
        assert podman("healthcheck", "run", agent).returncode == 0

        # A live stream; the agent is stopped (SIGTERM) while it is still being written.
        writer = _write(
            image,
            log_dir,
            names,
            "--events",
            str(SECOND),
            "--seed",
            "6",
            "--rate",
            "600",
            detach=True,
        )
        time.sleep(2.0)
        podman("stop", "--time", "40", agent, timeout=90)
        assert _exit_code(agent) == 0
        messages = {event.get("event") for event in _log_events(agent)}
        assert "shutdown_requested" in messages, "SIGTERM did not reach the agent"
        podman("wait", writer, timeout=120)
        assert _exit_code(writer) == 0
        _write(image, log_dir, names, "--events", str(WHILE_STOPPED), "--seed", "7", detach=False)

        podman("start", agent)
        total = FIRST + SECOND + WHILE_STOPPED
        seen = wait_for_count(es, events, total, timeout=240)
        time.sleep(3.0)  # anything extra (a replayed duplicate) would land by now
        expected = expected_from([log_dir / "audit.ndjson"], namespace)
        assert len(expected.event_ids) == total
        assert_exactly_once(es, namespace, expected)
        podman("stop", "--time", "40", agent, timeout=90)
        assert _exit_code(agent) == 0


def test_compiled_normalizer_matches_pure_python(image: str, tmp_path: Path) -> None:
    """The image's mypyc build gives byte-identical output to the source on the same file."""
    assert (
        podman(
            "run",
            "--rm",
            "--no-healthcheck",
            "--entrypoint",
            "python3",
            image,
            "-c",
            "import agent.normalize as n; print(n.compiled())",
        ).stdout.strip()
        == "True"
    )
    sample = Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson"
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.ndjson").write_bytes(sample.read_bytes())
    simulated = subprocess.run(
        [sys.executable, "-m", "agent", "simulate", "--events", "3000", "--seed", "3"],
        capture_output=True,
        check=True,
    ).stdout
    with (data / "in.ndjson").open("ab") as handle:
        handle.write(simulated)
    data.chmod(0o755)
    (data / "in.ndjson").chmod(0o644)
    args = ["normalize", "--with-changes", "--host-name", "h", str(data / "in.ndjson")]
    inside = podman(
        "run",
        "--rm",
        "--no-healthcheck",
        "--volume",
        f"{data}:{data}:ro",
        image,
        *args,
        check=False,
    )
    outside = subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, check=False
    )
    assert inside.returncode == outside.returncode == 3  # the sample holds two bad lines
    assert inside.stdout.count("\n") > 3000
    assert inside.stdout == outside.stdout
    assert inside.stderr == outside.stderr
