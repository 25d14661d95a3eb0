"""The image under test: built once per session with `deploy/image.sh` (what `make image` runs).

``APPMIXER_AUDIT_TEST_IMAGE`` names an image built already (CI builds it with ``make image``
first) and skips the build.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.container.tools import REPO, missing, podman, podman_env, podman_works


@pytest.fixture(scope="session")
def podman_ready() -> None:
    reason = podman_works()
    if reason is not None:
        missing(reason)


@pytest.fixture(scope="session")
def image(podman_ready: None) -> Iterator[str]:
    given = os.environ.get("APPMIXER_AUDIT_TEST_IMAGE", "").strip()
    if given:
        if podman("image", "exists", given, check=False).returncode != 0:
            pytest.fail(f"APPMIXER_AUDIT_TEST_IMAGE={given} is not an image podman has")
        yield given
        return
    result = subprocess.run(
        [str(REPO / "deploy" / "image.sh")],
        capture_output=True,
        text=True,
        env={**podman_env(), "ENGINE": "podman"},
        check=False,
        timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"deploy/image.sh failed: {result.stderr.strip()[-1500:]}")
    yield result.stdout.strip().splitlines()[-1]
