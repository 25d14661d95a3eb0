"""Every rotation style, end to end with a running agent: exact counts in the index."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from devtools.simulate import iter_events
from tests.system.conftest import (
    Agent,
    Expected,
    assert_exactly_once,
    count,
    expected_from,
    targets,
    wait_for_count,
)

pytestmark = [pytest.mark.system, pytest.mark.compat]


def lines(events: int, seed: int) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in iter_events(events, seed))


class Scenario:
    """One log directory, one running agent, and snapshots of each file identity's content.

    A snapshot holds the bytes a file identity had at its fullest (same first line, same
    offsets), so the expected ids are computed exactly as the agent derives them.
    """

    def __init__(self, root: Path, es: Elasticsearch, es_url: str, namespace: str) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir()
        self.snapshots = root / "snapshots"
        self.snapshots.mkdir()
        self.es = es
        self.es_url = es_url
        self.namespace = namespace
        self.agent: Agent | None = None

    @property
    def log(self) -> Path:
        return self.logs / "audit.log"

    def start(self, pattern: str = "audit.log", env: dict[str, str] | None = None) -> Agent:
        self.agent = Agent(
            [str(self.logs / pattern)], es_url=self.es_url, namespace=self.namespace,
            state_dir=self.root / "state", log_dir=self.root, env=env,
        )  # fmt: skip
        return self.agent

    def append(self, path: Path, data: bytes) -> None:
        with path.open("ab") as out:
            out.write(data)

    def snapshot(self, path: Path, name: str) -> None:
        shutil.copyfile(path, self.snapshots / name)

    def shipped(self) -> int:
        return count(self.es, targets(self.namespace)[0])

    def wait_shipped(self, at_least: int, timeout: float = 60) -> None:
        seen = wait_for_count(self.es, targets(self.namespace)[0], at_least, timeout, self.agent)
        assert seen >= at_least, f"only {seen} of {at_least} shipped"

    def expected(self) -> Expected:
        return expected_from(sorted(self.snapshots.iterdir()), self.namespace)

    def finish(self) -> Expected:
        expected = self.expected()
        self.wait_shipped(len(expected.event_ids))
        _events, changes = targets(self.namespace)
        wait_for_count(self.es, changes, expected.changes, 30, self.agent)
        assert self.agent is not None
        assert self.agent.terminate() == 0, self.agent.tail()
        assert_exactly_once(self.es, self.namespace, expected)
        return expected


@pytest.fixture
def scenario(es: Elasticsearch, es_url: str, namespace: str, tmp_path: Path) -> Iterator[Scenario]:
    value = Scenario(tmp_path, es, es_url, namespace)
    yield value
    if value.agent is not None and value.agent.alive():
        value.agent.kill()


@pytest.fixture
def reuse_scenario(scenario: Scenario) -> Iterator[Scenario]:
    """A scenario whose log directory is a small ext4 of its own where this machine allows
    a loop mount (root): one inode group, so the inode a file frees is the lowest free one
    and the next file made takes it at once. Elsewhere the shared filesystem, where
    :func:`reuse_inode` hunts for the inode with placeholders."""
    mounted = _mount_small_ext4(scenario.logs)
    yield scenario
    if mounted:
        if scenario.agent is not None and scenario.agent.alive():
            scenario.agent.kill()
        subprocess.run(["umount", "--lazy", str(scenario.logs)], check=False)


def _mount_small_ext4(mount_point: Path) -> bool:
    """Mount a fresh 64 MiB ext4 image (one block group, 256 inodes, journaled: ext4 skips
    recently freed inodes only without a journal) on the empty directory ``mount_point``;
    False where it can't."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("mkfs.ext4", "mount")):
        return False
    image = mount_point.with_name("logs.ext4")
    with image.open("wb") as out:
        out.truncate(64 * 1024 * 1024)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-N", "256", str(image)], capture_output=True, check=False
    )
    if made.returncode != 0:
        return False
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount_point)], capture_output=True, check=False
    )
    return mounted.returncode == 0


class TestRotation:
    def test_rename_and_create(self, scenario: Scenario) -> None:
        """Renamed away while open: the old file is read to its end, the new one from 0."""
        scenario.append(scenario.log, lines(400, 1))
        scenario.start("audit.log")
        scenario.wait_shipped(1)
        scenario.append(scenario.log, lines(300, 2))  # written just before the rename
        scenario.snapshot(scenario.log, "a")
        scenario.log.rename(scenario.logs / "audit.log.1")
        scenario.append(scenario.log, lines(500, 3))
        scenario.snapshot(scenario.log, "b")
        expected = scenario.finish()
        assert len(expected.event_ids) == 1200

    def test_rename_with_rotated_names_matched(self, scenario: Scenario) -> None:
        """With audit.log* matching the rotated file too, nothing is read twice."""
        scenario.append(scenario.log, lines(500, 4))
        scenario.start("audit.log*")
        scenario.log.rename(scenario.logs / "audit.log.1")  # maybe before the agent saw it
        scenario.snapshot(scenario.logs / "audit.log.1", "a")
        scenario.append(scenario.log, lines(400, 5))
        scenario.snapshot(scenario.log, "b")
        scenario.wait_shipped(900)
        (scenario.logs / "audit.log.1").rename(scenario.logs / "audit.log.2")
        scenario.log.rename(scenario.logs / "audit.log.1")
        scenario.append(scenario.log, lines(100, 6))
        scenario.snapshot(scenario.log, "c")
        expected = scenario.finish()
        assert len(expected.event_ids) == 1000

    def test_copytruncate(self, scenario: Scenario) -> None:
        """Copied then truncated: the copy continues from the checkpoint, no line twice."""
        scenario.append(scenario.log, lines(600, 7))
        scenario.start("audit.log*")
        scenario.wait_shipped(1)
        scenario.append(scenario.log, lines(300, 8))
        shutil.copyfile(scenario.log, scenario.logs / "audit.log.1")
        os.truncate(scenario.log, 0)
        scenario.snapshot(scenario.logs / "audit.log.1", "a")
        scenario.append(scenario.log, lines(200, 9))
        scenario.snapshot(scenario.log, "b")
        expected = scenario.finish()
        assert len(expected.event_ids) == 1100

    def test_truncation_in_place(self, scenario: Scenario) -> None:
        """Truncated to zero and written again: the new content is read from offset 0."""
        scenario.append(scenario.log, lines(500, 10))
        scenario.snapshot(scenario.log, "a")
        scenario.start("audit.log")
        scenario.wait_shipped(500)
        os.truncate(scenario.log, 0)
        scenario.append(scenario.log, lines(50, 11))  # shorter than what was there
        scenario.snapshot(scenario.log, "b")
        expected = scenario.finish()
        assert len(expected.event_ids) == 550

    def test_deletion_while_open(self, scenario: Scenario) -> None:
        """Deleted while open: what was written before the unlink is still shipped."""
        scenario.append(scenario.log, lines(500, 12))
        scenario.start("audit.log")
        scenario.wait_shipped(1)
        scenario.append(scenario.log, lines(400, 13))
        scenario.snapshot(scenario.log, "a")
        scenario.log.unlink()
        scenario.wait_shipped(900)
        scenario.append(scenario.log, lines(100, 14))
        scenario.snapshot(scenario.log, "b")
        expected = scenario.finish()
        assert len(expected.event_ids) == 1000

    def test_inode_reuse_while_stopped(self, reuse_scenario: Scenario) -> None:
        """A new file on a checkpointed file's inode is a new identity, read from 0."""
        scenario = reuse_scenario
        scenario.append(scenario.log, lines(300, 15))
        scenario.snapshot(scenario.log, "a")
        first = scenario.start("audit.log")
        scenario.wait_shipped(300)
        assert first.terminate() == 0
        old_inode = scenario.log.stat().st_ino
        scenario.log.unlink()
        reuse_inode(scenario.logs, old_inode, scenario.log, lines(1000, 16))
        scenario.snapshot(scenario.log, "b")
        scenario.start("audit.log")
        expected = scenario.finish()
        assert len(expected.event_ids) == 1300

    def test_inode_reuse_while_running(self, reuse_scenario: Scenario) -> None:
        """Deleted and recreated on the same inode while the agent runs: both, once each."""
        scenario = reuse_scenario
        scenario.append(scenario.log, lines(200, 17))
        scenario.snapshot(scenario.log, "a")
        scenario.start("audit.log", env={"APPMIXER_AUDIT_CLOSE_INACTIVE": "1"})
        scenario.wait_shipped(200)
        # Idle, the agent closes the file, so the unlink frees the inode at once.
        agent = scenario.agent
        assert agent is not None
        deadline = time.monotonic() + 30
        while scenario.log in agent.open_paths():
            assert time.monotonic() < deadline, "the agent kept the idle file open"
            time.sleep(0.2)
        old_inode = scenario.log.stat().st_ino
        scenario.log.unlink()
        reuse_inode(scenario.logs, old_inode, scenario.log, lines(250, 18))
        scenario.snapshot(scenario.log, "b")
        expected = scenario.finish()
        assert len(expected.event_ids) == 450


def reuse_inode(directory: Path, inode: int, target: Path, data: bytes) -> None:
    """Create ``target`` on the freed ``inode``: filesystems hand out the lowest free one,
    so empty placeholders take the lower free inodes until it comes up (skip if never).
    A journaling filesystem reuses a freed inode only once the journal has committed its
    release, hence the syncs; once many placeholders have taken every lower free inode,
    it is time rather than more placeholders that brings the freed one up, so the rest of
    the minute is spent waiting between single attempts."""
    placeholders: list[Path] = []
    deadline = time.monotonic() + 60
    os.sync()
    try:
        while time.monotonic() < deadline:
            candidate = directory / f".candidate-{len(placeholders)}"
            candidate.touch()
            if candidate.stat().st_ino == inode:
                candidate.write_bytes(data)
                candidate.rename(target)
                return
            placeholders.append(candidate)
            if len(placeholders) % 1000 == 0:
                os.sync()
            if len(placeholders) >= 20_000:
                os.sync()
                time.sleep(0.25)
    finally:
        for placeholder in placeholders:
            placeholder.unlink()
    pytest.skip(
        f"this filesystem did not hand the inode out again ({len(placeholders)} tried "
        f"in 60 s; processes still holding it: {_holders(directory, inode) or 'none'})"
    )


def _holders(directory: Path, inode: int) -> str:
    """The pids with an open descriptor on ``inode`` of ``directory``'s filesystem (an
    unlinked file's inode is not free while a descriptor holds it)."""
    device = directory.stat().st_dev
    found: set[str] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:
            continue
        for link in links:
            try:
                status = link.stat()
                if status.st_ino == inode and status.st_dev == device:
                    found.add(fd_dir.parent.name)
            except OSError:
                continue
    return ", ".join(sorted(found))
