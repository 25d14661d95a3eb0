"""The line-length cap: an over-long line is read through in bounded memory, never held whole."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

from agent.files import Registry
from agent.files._tracked import HEAD_BYTES
from tests.unit.test_files_tailer import (
    MakeTailer,
    ack_all,
    append,
    data,
    drain,
    make_tailer,
    registry,
)

__all__ = ["make_tailer", "registry"]  # fixtures, imported for pytest

MIB = 1024 * 1024


class TestOverLongLines:
    def test_line_over_the_cap_in_one_read(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A line longer than the cap comes out as its head, with its true offset, end and
        length; its neighbours are untouched."""
        path = tmp_path / "audit.log"
        long = b"{" + b"x" * 2999
        path.write_bytes(b"first\n" + long + b"\nlast\n")
        lines = drain(make_tailer(path, line_max=1024))
        assert data(lines) == [b"first", long[:HEAD_BYTES], b"last"]
        assert [line.oversized for line in lines] == [0, 3000, 0]
        assert (lines[1].offset, lines[1].end) == (6, 6 + 3001)
        assert lines[2].offset == 6 + 3001

    def test_line_exactly_at_the_cap_is_whole(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """The cap is inclusive: a line of exactly line_max bytes is an ordinary line."""
        path = tmp_path / "audit.log"
        exact = b"y" * 1024
        path.write_bytes(b"a\n" + exact + b"\n")
        lines = drain(make_tailer(path, line_max=1024))
        assert data(lines) == [b"a", exact]
        assert [line.oversized for line in lines] == [0, 0]

    def test_read_through_across_many_chunks(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A line spanning hundreds of read chunks is read through, then reading goes on."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"head\n" + b"L" * 300_000 + b"\r\ntail\n")
        lines = drain(make_tailer(path, line_max=2048, read_chunk=1024))
        assert data(lines) == [b"head", b"L" * HEAD_BYTES, b"tail"]
        assert lines[1].oversized == 300_001
        assert lines[1].end == 5 + 300_002
        assert lines[2].offset == lines[1].end

    def test_unfinished_giant_line_waits_then_completes(
        self, tmp_path: Path, make_tailer: MakeTailer, registry: Registry
    ) -> None:
        """A 256 MiB sparse line without a newline is read through in bounded memory and
        waits as a partial line; once its newline and more lines arrive, it comes out as one
        over-long line, the checkpoint moves past it, and a new tailer starts after it."""
        path = tmp_path / "audit.log"
        size = 256 * MIB
        start = b'{"id": "start"'
        with path.open("wb") as handle:
            handle.write(start)
            handle.truncate(size)  # sparse: no disk used
        tailer = make_tailer(path, line_max=4 * MIB)
        tracemalloc.start()
        try:
            assert drain(tailer, timeout=60) == []
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * MIB + 3 * MIB, f"peak {peak / MIB:.1f} MiB"
        assert tailer.pending_partial() == {str(path): size}
        append(path, b"\n" + b"".join(b'{"n": %d}\n' % n for n in range(5)))
        lines = drain(tailer)
        assert [line.oversized for line in lines] == [size, 0, 0, 0, 0, 0]
        assert lines[0].data == start + b"\0" * (HEAD_BYTES - len(start))
        assert (lines[0].offset, lines[0].end) == (0, size + 1)
        assert data(lines[1:]) == [b'{"n": %d}' % n for n in range(5)]
        ack_all(registry, lines)
        again = make_tailer(path, registry=registry)
        assert drain(again) == []

    def test_other_files_keep_flowing(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """While one file's giant line is read through, another file's lines still come out
        on every read (the read-through is charged to its own file's byte budget)."""
        giant = tmp_path / "a-giant.log"
        with giant.open("wb") as handle:
            handle.write(b"x")
            handle.truncate(64 * MIB)
        small = tmp_path / "b-small.log"
        small.write_bytes(b"".join(b"line %d\n" % n for n in range(50)))
        tailer = make_tailer(tmp_path / "*.log", line_max=MIB)
        tailer.start()
        first = tailer.read(1000, MIB)
        assert [line.path for line in first] == [str(small)] * 50

    def test_truncation_during_read_through_starts_over(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """A file truncated while its over-long line is read through starts again at 0."""
        path = tmp_path / "audit.log"
        with path.open("wb") as handle:
            handle.write(b"z" * 5000)
        tailer = make_tailer(path, line_max=1024, read_chunk=1024)
        assert drain(tailer) == []
        os.truncate(path, 0)
        append(path, b"fresh\n")
        assert data(drain(tailer)) == [b"fresh"]


class TestDeadLetterOfOverLongLine:
    def test_record_has_offset_length_and_first_bytes(self, tmp_path: Path) -> None:
        """The dead letter of an over-long line says where it was, how long, and how it began."""
        from datetime import UTC, datetime

        from agent.deadletter import DeadLetter
        from agent.files import FileKey, Line
        from agent.reader import over_long

        head = b"\x00\xff" + b"a" * (HEAD_BYTES - 2)
        line = Line(FileKey(1, 2, "0" * 32), "/logs/a.log", 10, 10 + 9001, head, oversized=9000)
        rejection = over_long(line, 4096)
        assert rejection.reason == (
            "line of 9000 bytes is longer than LINE_MAX_BYTES (4096); "
            f"the dead letter keeps its first {HEAD_BYTES} bytes"
        )
        record = DeadLetter.rejected(line, rejection).to_record(datetime(2026, 1, 1, tzinfo=UTC))
        assert record["stage"] == "decode"
        assert (record["offset"], record["length"], record["path"]) == (10, 9000, "/logs/a.log")
        assert record["line_encoding"] == "base64"


class TestAliases:
    def test_symlink_to_a_tailed_file_is_not_a_rotation(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """A symlink (sorting first) to a file already tailed changes nothing: no rotation is
        logged and its lines keep the file's own name."""
        from structlog.testing import capture_logs

        path = tmp_path / "b-audit.log"
        path.write_bytes(b"one\n")
        tailer = make_tailer(tmp_path / "*.log")
        assert [line.path for line in drain(tailer)] == [str(path)]
        (tmp_path / "a-link.log").symlink_to(path)
        time.sleep(0.1)  # past the rescan interval (0.05 s): the next read scans
        with capture_logs() as logs:
            append(path, b"two\n")
            lines = drain(tailer)
        assert [(line.path, line.data) for line in lines] == [(str(path), b"two")]
        assert [entry for entry in logs if entry["event"] == "file_rotated"] == []
