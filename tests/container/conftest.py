"""The image under test: built once per session with `deploy/image.sh` (what `make image` runs).

``APPMIXER_AUDIT_TEST_IMAGE`` names an image built already (CI builds it with ``make image``
first) and skips the build.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.container.tools import REPO, image_from, missing, podman, podman_works


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
    yield image_from(REPO / "deploy" / "image.sh", ENGINE="podman")
