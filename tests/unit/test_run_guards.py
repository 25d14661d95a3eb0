"""The guards ``run`` puts before any work: the state-dir lock, pre-flight, own files, leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import Settings
from agent.files import FilePosition
from agent.files.discover import Discovery
from agent.files.identity import FINGERPRINT_HEX_CHARS
from agent.leftover import lines_left
from agent.preflight import PreflightError, check, input_warnings
from agent.statelock import StateLock, StateLockError


class TestStateLock:
    def test_second_holder_is_refused_naming_the_first(self, tmp_path: Path) -> None:
        """A second lock on the same state dir fails with one line naming the holder's pid."""
        first = StateLock(tmp_path)
        first.acquire()
        with pytest.raises(StateLockError) as raised:
            StateLock(tmp_path).acquire()
        assert str(raised.value) == (
            f"state dir {tmp_path} is in use by another agent (pid {os.getpid()}); "
            "give each agent its own --state-dir"
        )
        first.release()
        again = StateLock(tmp_path)
        again.acquire()
        assert again.held
        again.release()

    def test_lock_dies_with_its_process(self, tmp_path: Path) -> None:
        """A holder killed outright (no cleanup) leaves a lock file that no longer locks."""
        code = (
            "import os, sys; from agent.statelock import StateLock; "
            f"StateLock({str(tmp_path)!r}).acquire(); print(os.getpid(), flush=True); "
            "sys.stdin.read()"
        )
        holder = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None
        pid = holder.stdout.readline().strip()
        with pytest.raises(StateLockError, match=rf"\(pid {pid}\)"):
            StateLock(tmp_path).acquire()
        holder.kill()
        holder.wait()
        lock = StateLock(tmp_path)
        lock.acquire()
        assert (tmp_path / "agent.lock").read_text() == f"{os.getpid()}\n"
        lock.release()


class TestPreflight:
    def test_creates_missing_dirs(self, tmp_path: Path) -> None:
        """State and dead-letter dirs that do not exist yet are created, not refused."""
        settings = Settings(paths=["/x/*.log"], state_dir=tmp_path / "a" / "b")
        check(settings)
        assert (tmp_path / "a" / "b" / "dlq").is_dir()
        assert list((tmp_path / "a" / "b").iterdir()) == [tmp_path / "a" / "b" / "dlq"]

    def test_dir_under_a_file(self, tmp_path: Path) -> None:
        """A state dir that cannot be created is one line naming it and why."""
        (tmp_path / "f").write_text("")
        settings = Settings(paths=["/x"], state_dir=tmp_path / "f" / "s")
        with pytest.raises(PreflightError) as raised:
            check(settings)
        assert str(raised.value) == (
            f"state dir (--state-dir) {tmp_path / 'f' / 's'} cannot be created: Not a directory"
        )

    def test_dlq_dir_that_is_a_file(self, tmp_path: Path) -> None:
        """A dead-letter 'dir' that is a regular file is refused."""
        (tmp_path / "dlq").write_text("")
        settings = Settings(paths=["/x"], state_dir=tmp_path / "s", dlq_dir=tmp_path / "dlq")
        with pytest.raises(PreflightError, match=r"dead-letter dir \(--dlq-dir\) .* cannot be"):
            check(settings)

    def test_empty_pattern(self, tmp_path: Path) -> None:
        """An empty --path is a usage error."""
        settings = Settings(paths=[""], state_dir=tmp_path)
        with pytest.raises(PreflightError, match="an empty path pattern"):
            check(settings)

    def test_ca_file(self, tmp_path: Path) -> None:
        """A missing, non-regular or certificate-less CA file is refused."""
        junk = tmp_path / "junk.pem"
        junk.write_text("hello\n")
        for ca, reason in (
            (tmp_path / "none.pem", "cannot be read"),
            (tmp_path, "is not a regular file"),
            (junk, "holds no usable certificate"),
        ):
            settings = Settings(paths=["/x"], state_dir=tmp_path / "s", es_ca_certs=ca)
            with pytest.raises(PreflightError, match=reason):
                check(settings)

    def test_input_warnings(self, tmp_path: Path) -> None:
        """A directory and a pattern matching nothing get one warning each; a match none."""
        (tmp_path / "a.log").write_text("x\n")
        found = input_warnings([str(tmp_path), str(tmp_path / "*.nope"), str(tmp_path / "*.log")])
        assert found == [
            ("path_is_directory", {"pattern": str(tmp_path), "hint": f"try {tmp_path}/*.log"}),
            ("no_file_matched", {"pattern": str(tmp_path / "*.nope")}),
        ]


class TestOwnFilesExcluded:
    def test_scan_skips_state_and_dlq_dirs(self, tmp_path: Path) -> None:
        """Whatever the glob, files under the state and dead-letter dirs are never matched,
        also when reached through a symlink."""
        logs = tmp_path / "logs"
        (logs / "state" / "dlq").mkdir(parents=True)
        (logs / "elsewhere-dlq").mkdir()
        for name in ("audit.log", "state/registry.json", "state/dlq/d.ndjson", "elsewhere-dlq/x"):
            (logs / name).write_text("{}\n")
        (logs / "link-to-state").symlink_to(logs / "state")
        discovery = Discovery(
            [f"{logs}/**"],
            rescan_interval=1,
            on_change=lambda _s: None,
            exclude=[logs / "state", logs / "elsewhere-dlq"],
        )
        assert discovery.scan() == [str(logs / "audit.log")]
        assert discovery.scan() == [str(logs / "audit.log")]  # warned once, still excluded


class TestLinesLeft:
    def test_counts_lines_after_each_checkpoint(self, tmp_path: Path) -> None:
        """Lines after the acknowledged offset count; a file without a checkpoint counts whole;
        a partial last line does not count; own files are not counted."""
        done = tmp_path / "done.log"
        done.write_bytes(b"a\nb\nc\n")
        fresh = tmp_path / "fresh.log"
        fresh.write_bytes(b"1\n2\npartial")
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "x.log").write_bytes(b"1\n2\n")
        st = done.stat()
        position = FilePosition(
            f"{st.st_dev}:{st.st_ino}:{'0' * FINGERPRINT_HEX_CHARS}", str(done), 2, 2, 0.0
        )
        assert lines_left([str(tmp_path / "*.log"), str(tmp_path / "**")], [position],
                          [tmp_path / "state"]) == 2 + 2  # fmt: skip
