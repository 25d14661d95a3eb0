"""Rotation on real files: rename and create, copytruncate, truncation, deletion, inode reuse."""

from __future__ import annotations

import shutil
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.evidence.chains import Chains
from agent.files import Copied, FileKey, Registry
from agent.files.identity import fingerprint, key_at
from tests.unit.test_chain import event
from tests.unit.test_files_tailer import (
    MakeTailer,
    ack_all,
    append,
    collect,
    data,
    drain,
    eventually,
    make_tailer,
    open_paths,
    registry,
)

__all__ = ["make_tailer", "registry"]  # fixtures shared with the tailer tests

needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


def _lines(*numbers: int) -> bytes:
    return b"".join(b'{"n":%d}\n' % n for n in numbers)


def _values(*numbers: int) -> list[bytes]:
    return [b'{"n":%d}' % n for n in numbers]


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@needs_proc
class TestRenameAndCreate:
    def test_old_file_finished_through_descriptor(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """Lines the writer adds after the rename are read from the old file, then it is let go."""
        log = tmp_path / "audit.log"
        writer = log.open("ab", buffering=0)
        writer.write(_lines(1, 2))
        tailer = make_tailer(log, start=True, close_inactive=0.5)
        first = collect(tailer, 2)
        log.rename(tmp_path / "audit.log.1")  # outside the pattern from now on
        writer.write(_lines(3))  # the service has not reopened yet
        log.write_bytes(_lines(100))
        writer.close()
        rest = collect(tailer, 2)
        old = [line for line in first + rest if line.key == first[0].key]
        new = [line for line in rest if line.key != first[0].key]
        assert data(old) == _values(1, 2, 3)
        assert data(new) == _values(100)
        assert new[0].offset == 0
        assert str(tmp_path / "audit.log.1") in open_paths()  # held until quiet
        eventually(lambda: str(tmp_path / "audit.log.1") not in open_paths(), tailer)

    def test_rotated_name_matching_pattern_not_read_twice(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """With ``audit.log*`` the renamed file keeps its key and its lines are not read again."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2))
        tailer = make_tailer(tmp_path / "audit.log*", start=True)
        first = drain(tailer)
        with capture_logs() as logs:
            log.rename(tmp_path / "audit.log.1")
            append(tmp_path / "audit.log.1", _lines(3))
            log.write_bytes(_lines(4))
            rest = collect(tailer, 2)
            rest += drain(tailer)
        assert data(first) == _values(1, 2)
        assert sorted(data(rest)) == _values(3, 4)
        renamed = [line for line in rest if line.data == _values(3)[0]]
        assert renamed[0].key == first[0].key
        assert renamed[0].path == str(tmp_path / "audit.log.1")
        assert _events(logs, "file_rotated")

    def test_restart_after_rotation(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """After a restart the rotated file resumes at its checkpoint; the new one starts at 0."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2))
        ack_all(registry, drain(make_tailer(tmp_path / "audit.log*")))
        registry.save()
        # while the agent is down: one more line, rotation, a new file
        append(log, _lines(3))
        log.rename(tmp_path / "audit.log.1")
        log.write_bytes(_lines(4))
        restarted = make_tailer(tmp_path / "audit.log*", registry=Registry(tmp_path / "state"))
        assert sorted(data(drain(restarted))) == _values(3, 4)


class TestCopytruncate:
    def test_copy_continues_and_catches_race_lines(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """The copy resumes at the checkpoint (catching unread lines); the original restarts."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2, 3))
        tailer = make_tailer(tmp_path / "audit.log*", start=True)
        shipped = drain(tailer)
        ack_all(registry, shipped)
        with capture_logs() as logs:
            append(log, _lines(4, 5))  # written after the last read, before the copy
            shutil.copyfile(log, tmp_path / "audit.log.1")
            with log.open("r+b") as handle:
                handle.truncate(0)
            append(log, _lines(6))
            rest = collect(tailer, 3)
            rest += drain(tailer)
        assert data(shipped) == _values(1, 2, 3)
        by_path = {
            path: data([line for line in rest if line.path == path])
            for path in {line.path for line in rest}
        }
        # Lines 4 and 5 may be read from the original before the truncation, from the copy
        # after it, or both (same content id and offset, so the same event id): never lost.
        assert set(data(rest)) == set(_values(4, 5, 6))
        assert by_path[str(log)][-1:] == _values(6)
        copy_lines = [line for line in rest if line.path == str(tmp_path / "audit.log.1")]
        assert all(line.offset >= shipped[-1].end for line in copy_lines)
        assert all(line.key.content_id == shipped[0].key.content_id for line in copy_lines)
        assert _events(logs, "file_truncated")

    def test_copy_found_after_restart(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A copy made while the agent was down continues from the original's checkpoint."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2, 3))
        shipped = drain(make_tailer(log))
        ack_all(registry, shipped)
        registry.save()
        append(log, _lines(4))
        shutil.copyfile(log, tmp_path / "audit.log.1")
        with log.open("r+b") as handle:
            handle.truncate(0)
        append(log, _lines(5))
        restarted_registry = Registry(tmp_path / "state")
        with capture_logs() as logs:
            lines = drain(make_tailer(tmp_path / "audit.log*", registry=restarted_registry))
        copy = [line for line in lines if line.path.endswith(".1")]
        original = [line for line in lines if not line.path.endswith(".1")]
        assert data(copy) == _values(4)
        assert copy[0].offset == shipped[-1].end
        assert data(original) == _values(5)
        assert original[0].offset == 0
        assert _events(logs, "file_copy_detected")
        copied = restarted_registry.get(copy[0].key)
        assert copied is not None
        assert copied.acked == shipped[-1].end  # the copy inherits the checkpoint

    @pytest.mark.parametrize("truncation_seen_first", [False, True])
    def test_copy_of_a_file_not_yet_in_the_registry(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer,
        truncation_seen_first: bool,
    ) -> None:  # fmt: skip
        """Copied and truncated right after it was opened, before any line of it was sent:
        the copy is read from 0 as a copy of the original, in the original's chain (a
        stream of its own would begin with lines the index holds under the original's).
        Whether the tailer notices the truncation before it finds the copy or after."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2, 3))
        tailer = make_tailer(tmp_path / "audit.log*", start=True)
        first = drain(tailer)  # read, never acknowledged: the registry has no entry
        assert registry.positions() == []
        content = log.read_bytes() + _lines(9)  # the copy has a line never read from log
        with log.open("r+b") as handle:
            handle.truncate(0)
        append(log, _lines(4))
        staged = tmp_path / "staging"
        staged.write_bytes(content)
        with capture_logs() as logs:
            if truncation_seen_first:
                assert data(collect(tailer, 1)) == _values(4)
                staged.rename(tmp_path / "audit.log.1")
            else:
                staged.rename(tmp_path / "audit.log.1")
                time.sleep(0.2)  # a scan is due: the copy is found before the truncation
            rest = collect(tailer, 4 if truncation_seen_first else 5)
        copy = [line for line in rest if line.path.endswith(".1")]
        assert data(copy) == _values(1, 2, 3, 9)
        assert [line.offset for line in copy[:3]] == [line.offset for line in first]
        copied = [fact for fact in tailer.facts if isinstance(fact, Copied)]
        assert [(fact.original, fact.acked, fact.sent) for fact in copied] == [
            (str(first[0].key), 0, 0)
        ]
        assert copied[0].key == copy[0].key
        assert _events(logs, "file_copy_detected")[0]["registered"] is False

        chains = Chains("pod-a", lambda *_: None)
        heads = [chains.advance(str(line.key), line.key.content_id, line.offset, line.end,
                                (f"evt-{line.offset}", event(line.offset))).head
                 for line in first]  # fmt: skip
        chains.copied(str(copied[0].key), copied[0].original, copied[0].acked, copied[0].chain)
        again = [chains.advance(str(line.key), line.key.content_id, line.offset, line.end,
                                (f"evt-{line.offset}", event(line.offset))).head
                 for line in copy]  # fmt: skip
        assert again[:3] == heads  # the same stream, the same links: a replay, never a fork
        assert again[3].seq == 4

    def test_same_first_line_in_the_same_run_is_not_a_copy(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """Another file that only begins with the same line, while the first is still open
        and differs after it, is a file of its own, even with nothing in the registry."""
        (tmp_path / "a.log").write_bytes(b"banner\nabc\n")
        tailer = make_tailer(tmp_path / "*.log", start=True)
        assert data(drain(tailer)) == [b"banner", b"abc"]
        (tmp_path / "b.log").write_bytes(b"banner\nxyz\n")
        assert data(collect(tailer, 2)) == [b"banner", b"xyz"]
        assert not [fact for fact in tailer.facts if isinstance(fact, Copied)]

    def test_copy_in_progress_waits_for_checkpoint(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A copy found while still shorter than the checkpoint is read from there once it grows."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2, 3))
        shipped = drain(make_tailer(log))
        ack_all(registry, shipped)
        content = log.read_bytes() + _lines(4)
        copy = tmp_path / "audit.log.1"
        copy.write_bytes(content[:10])  # logrotate is still copying
        tailer = make_tailer(copy)
        assert drain(tailer) == []
        append(copy, content[10:])
        lines = collect(tailer, 1)
        assert data(lines) == _values(4)
        assert lines[0].offset == shipped[-1].end

    def test_unrelated_file_with_same_first_line_mismatch(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A "copy" whose checkpoint offset is not a line boundary is read from 0 instead."""
        log = tmp_path / "audit.log"
        log.write_bytes(b"same\nabc\n")
        ack_all(registry, drain(make_tailer(log)))
        other = tmp_path / "other.log"
        other.write_bytes(b"same\nabcdefgh\n")
        assert data(drain(make_tailer(other))) == [b"same", b"abcdefgh"]


class TestTruncation:
    def test_truncated_in_place_restarts_at_zero(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A file cut below the read offset starts again at 0 under its new first line's key."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2, 3))
        tailer = make_tailer(log, start=True)
        before = drain(tailer)
        with capture_logs() as logs:
            with log.open("r+b") as handle:
                handle.truncate(0)
            append(log, _lines(9))
            after = collect(tailer, 1)
        assert data(after) == _values(9)
        assert after[0].offset == 0
        assert after[0].key != before[0].key
        assert (after[0].key.device, after[0].key.inode) == (
            before[0].key.device,
            before[0].key.inode,
        )
        truncated = _events(logs, "file_truncated")
        assert truncated
        assert truncated[0]["reason"] == "shrank"

    def test_truncated_and_regrown_past_offset(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """A file truncated and refilled beyond the old offset is caught by its new first line."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1))
        tailer = make_tailer(log)
        drain(tailer)
        with log.open("r+b") as handle:
            handle.truncate(0)
            handle.write(_lines(20, 21, 22))
        with capture_logs() as logs:
            assert data(drain(tailer)) == _values(20, 21, 22)
        assert _events(logs, "file_truncated")[0]["reason"] == "first_line_changed"

    def test_same_first_line_resets_checkpoint(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """Truncated with an identical first line: same key, read from 0, checkpoint reset."""
        log = tmp_path / "audit.log"
        log.write_bytes(b"header\nA-long-line\nB-long-line\n")
        tailer = make_tailer(log)
        first = drain(tailer)
        ack_all(registry, first)
        with log.open("r+b") as handle:
            handle.truncate(0)
        append(log, b"header\nC\n")
        again = drain(tailer)
        assert data(again) == [b"header", b"C"]
        assert again[0].key == first[0].key
        position = registry.get(first[0].key)
        assert position is not None
        assert position.acked == 0

    def test_truncated_while_stopped(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A file now shorter than its checkpoint (truncated while down) is read from 0."""
        log = tmp_path / "audit.log"
        log.write_bytes(b"header\nA-long-line\nB-long-line\n")
        ack_all(registry, drain(make_tailer(log)))
        with log.open("r+b") as handle:
            handle.truncate(0)
            handle.write(b"header\nC\n")
        assert data(drain(make_tailer(log))) == [b"header", b"C"]

    def test_checkpoint_not_on_line_boundary(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A checkpoint that does not follow a newline no longer fits the file: read from 0."""
        log = tmp_path / "audit.log"
        log.write_bytes(b"first\nsecond\nthird\n")
        key = key_at(str(log), 1024)
        assert key is not None
        registry.ack(key, str(log), 9)
        with capture_logs() as logs:
            assert data(drain(make_tailer(log))) == [b"first", b"second", b"third"]
        assert _events(logs, "checkpoint_mismatch")


@needs_proc
class TestDeletion:
    def test_deleted_file_read_to_end_then_closed(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A file deleted while open is read to its end through the descriptor, then closed."""
        log = tmp_path / "audit.log"
        writer = log.open("ab", buffering=0)
        writer.write(_lines(1, 2, 3))
        tailer = make_tailer(log, start=True)
        first = tailer.read(1, 1 << 20)
        log.unlink()
        writer.write(_lines(4))
        writer.close()
        rest = collect(tailer, 3)
        assert data(first + rest) == _values(1, 2, 3, 4)
        ack_all(registry, first + rest)
        eventually(lambda: not any(str(log) in path for path in open_paths()), tailer)
        assert registry.get(first[0].key) is not None  # kept until forget()
        assert registry.forget(older_than=-1) == 1


@needs_proc
class TestInodeReuse:
    def test_known_inode_with_other_fingerprint_starts_at_zero(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """Same device and inode as a registry entry, another first line: a new file, from 0."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1, 2))
        st = log.stat()
        stale = FileKey(st.st_dev, st.st_ino, fingerprint(b"a file long gone\n"))
        registry.ack(stale, str(log), 10_000)
        assert data(drain(make_tailer(log))) == _values(1, 2)

    def test_closed_file_replaced_on_same_inode(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """A file closed for inactivity whose inode now holds other content is read from 0."""
        log = tmp_path / "audit.log"
        log.write_bytes(_lines(1))
        tailer = make_tailer(log, close_inactive=0.05)
        first = drain(tailer)
        eventually(lambda: str(log) not in open_paths(), tailer)
        with log.open("r+b") as handle:  # same inode, new content, longer than before
            handle.write(_lines(7, 8))
        again = collect(tailer, 2)
        assert data(again) == _values(7, 8)
        assert again[0].offset == 0
        assert again[0].key != first[0].key
