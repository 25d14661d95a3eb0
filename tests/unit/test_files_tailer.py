"""The tailer on real files: complete lines by byte offset, fairness, discovery, closing."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.acks import Checkpointer
from agent.files import Copied, Fact, FileKey, Gone, Line, Moved, Opened, Registry, Reset, Tailer
from agent.files.identity import key_at

MakeTailer = Callable[..., "Tailing"]

needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


# --- helpers shared with test_files_rotation.py


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def collect(tailer: Tailer, count: int, *, timeout: float = 5.0) -> list[Line]:
    """Read until at least ``count`` lines arrived; fail when the deadline passes first."""
    deadline = time.monotonic() + timeout
    lines: list[Line] = []
    while len(lines) < count:
        lines += tailer.read(1000, 1 << 20)
        if len(lines) >= count:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"expected {count} lines, got {[line.data for line in lines]}")
        tailer.wait(0.05)
    return lines


def drain(tailer: Tailer, *, timeout: float = 5.0) -> list[Line]:
    """Read until the tailer is idle: everything present has been returned."""
    deadline = time.monotonic() + timeout
    lines: list[Line] = []
    while True:
        batch = tailer.read(1000, 1 << 20)
        lines += batch
        if not batch and tailer.idle():
            return lines
        if time.monotonic() > deadline:
            pytest.fail("the tailer never became idle")


def eventually(condition: Callable[[], bool], tailer: Tailer, *, timeout: float = 5.0) -> None:
    """Keep the tailer reading until ``condition`` holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached before the deadline")
        tailer.read(1000, 1 << 20)
        tailer.wait(0.02)


def data(lines: list[Line]) -> list[bytes]:
    return [line.data for line in lines]


def open_paths() -> list[str]:
    """Paths of this process's open descriptors (Linux), to see which files are held."""
    paths = []
    for link in Path("/proc/self/fd").iterdir():
        try:
            paths.append(str(link.readlink()))
        except OSError:
            continue
    return paths


def ack_all(registry: Registry, lines: list[Line]) -> None:
    for line in lines:
        registry.mark_sent(line.key, line.path, line.end)
        registry.ack(line.key, line.path, line.end)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "state")


class Tailing(Tailer):
    """The tailer as the pipeline uses it: its facts go to a checkpointer (the registry's
    one writer) in stream order, and ``read`` returns the lines; facts are kept to inspect."""

    def __init__(self, patterns: list[str], registry: Registry, **options: Any) -> None:
        super().__init__(patterns, registry, **options)
        self.checkpoints = Checkpointer(registry)
        self.facts: list[Fact] = []

    def read(self, max_lines: int, max_bytes: int) -> list[Line]:  # type: ignore[override]
        lines: list[Line] = []
        for entry in self.read_stream(max_lines, max_bytes):
            if isinstance(entry, Line):
                lines.append(entry)
            else:
                self.facts.append(entry)
                self.checkpoints.apply(entry)
        return lines

    def read_stream(self, max_lines: int, max_bytes: int) -> list[Line | Fact]:
        return super().read(max_lines, max_bytes)


@pytest.fixture
def make_tailer(registry: Registry) -> Iterator[MakeTailer]:
    """Build tailers (fast rescans unless told otherwise); all are stopped afterwards."""
    made: list[Tailer] = []

    def make(*patterns: Path | str, start: bool = False, **options: object) -> Tailing:
        chosen = options.pop("registry", registry)
        assert isinstance(chosen, Registry)
        settings: dict[str, object] = {"rescan_interval": 0.05, **options}
        tailer = Tailing([str(p) for p in patterns], chosen, **settings)
        made.append(tailer)
        if start:
            tailer.start()
        return tailer

    yield make
    for tailer in made:
        tailer.stop()


# --- tests


class TestReading:
    def test_complete_lines_with_offsets(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """Each line carries its key, path, first-byte offset, end past its newline, no newline."""
        path = tmp_path / "audit.log"
        path.write_bytes(b'{"a":1}\n{"b":22}\n')
        lines = drain(make_tailer(path))
        key = key_at(str(path), 1024)
        assert lines == [
            Line(key, str(path), offset=0, end=8, data=b'{"a":1}', generation=1),  # type: ignore[arg-type]
            Line(key, str(path), offset=8, end=17, data=b'{"b":22}', generation=1),  # type: ignore[arg-type]
        ]

    def test_crlf_and_blank_lines(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A trailing carriage return is removed; blank lines are returned, not swallowed."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"one\r\n\ntwo\n")
        lines = drain(make_tailer(path))
        assert data(lines) == [b"one", b"", b"two"]
        assert [line.end for line in lines] == [5, 6, 10]

    def test_partial_last_line_waits(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """An unterminated last line is held back until its newline arrives."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"done\nhalf")
        tailer = make_tailer(path)
        assert data(drain(tailer)) == [b"done"]
        assert tailer.idle()
        assert tailer.pending_partial() == {str(path): 4}
        append(path, b"-way\n")
        lines = collect(tailer, 1)
        assert data(lines) == [b"half-way"]
        assert (lines[0].offset, lines[0].end) == (5, 14)
        assert tailer.pending_partial() == {}

    def test_incomplete_first_line_not_read(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A file whose first line has no newline yet has no identity and yields nothing."""
        path = tmp_path / "audit.log"
        path.write_bytes(b'{"still":')
        tailer = make_tailer(path)
        assert drain(tailer) == []
        assert tailer.pending_partial() == {str(path): 9}
        append(path, b'"writing"}\n')
        assert data(collect(tailer, 1)) == [b'{"still":"writing"}']

    def test_file_smaller_than_fingerprint_window(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """A one-line file far shorter than fingerprint_bytes is read, not ignored."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"{}\n")
        assert data(drain(make_tailer(path, fingerprint_bytes=1 << 20))) == [b"{}"]

    def test_resumes_at_acked(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A file known to the registry is read from its acked offset, not from 0."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"one\ntwo\nthree\n")
        key = key_at(str(path), 1024)
        assert key is not None
        registry.mark_sent(key, str(path), 14)
        registry.ack(key, str(path), 8)
        lines = drain(make_tailer(path))
        assert data(lines) == [b"three"]
        assert lines[0].offset == 8

    def test_round_robin_across_files(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A huge file cannot starve a small one: both appear in the first read."""
        big, small = tmp_path / "big.log", tmp_path / "small.log"
        big.write_bytes(b"".join(b"big %d\n" % n for n in range(20_000)))
        small.write_bytes(b"small 1\nsmall 2\n")
        tailer = make_tailer(tmp_path / "*.log")
        first = tailer.read(100, 1 << 20)
        assert len(first) == 100
        assert [line.data for line in first if line.path == str(small)] == [b"small 1", b"small 2"]
        rest = drain(tailer)
        big_lines = [line for line in first + rest if line.path == str(big)]
        assert [line.data for line in big_lines] == [b"big %d" % n for n in range(20_000)]

    def test_byte_budget(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A read returns about max_bytes of data, but a single larger line still comes out."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"x" * 10 + b"\n" + b"y" * 10 + b"\n" + b"z" * 500 + b"\n")
        tailer = make_tailer(path)
        tailer.start()
        assert data(tailer.read(100, 25)) == [b"x" * 10, b"y" * 10]
        assert data(tailer.read(100, 25)) == [b"z" * 500]

    def test_line_longer_than_read_chunk(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A line spanning many read chunks is assembled whole."""
        path = tmp_path / "audit.log"
        long = b"L" * 200_000
        path.write_bytes(b"head\n" + long + b"\ntail\n")
        assert data(drain(make_tailer(path, read_chunk=1024))) == [b"head", long, b"tail"]

    def test_lag_and_idle(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """lag() counts unread bytes per path; idle() turns true only once all is read."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\nb\n")
        tailer = make_tailer(path)
        tailer.start()
        assert tailer.lag() == {str(path): 4}
        assert not tailer.idle()
        assert len(tailer.read(1, 1 << 20)) == 1
        assert not tailer.idle()
        drain(tailer)
        assert tailer.lag() == {str(path): 0}

    def test_stop_closes_files(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """stop() releases every descriptor and later reads return nothing."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\n")
        tailer = make_tailer(path)
        drain(tailer)
        tailer.stop()
        append(path, b"b\n")
        assert tailer.read(10, 1000) == []
        if Path("/proc/self/fd").is_dir():
            assert str(path) not in open_paths()


class TestLineSplitting:
    @settings(max_examples=60, deadline=None)
    @given(
        lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
        cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
        max_lines=st.integers(min_value=1, max_value=7),
        max_bytes=st.integers(min_value=1, max_value=90),
        read_chunk=st.integers(min_value=1, max_value=64),
    )
    def test_any_write_pattern_gives_the_written_lines(
        self, lines: list[bytes], cuts: list[int], max_lines: int, max_bytes: int, read_chunk: int
    ) -> None:
        """However writes split lines and however small the budgets, lines come out whole."""
        content = b"".join(line + b"\n" for line in lines)
        bounds = sorted({min(cut, len(content)) for cut in cuts} | {len(content)})
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "audit.log"
            path.write_bytes(b"")
            tailer = Tailing(
                [str(path)], Registry(Path(directory) / "state"), read_chunk=read_chunk
            )
            got: list[Line] = []
            written = 0
            for bound in bounds:
                append(path, content[written:bound])
                written = bound
                got += tailer.read(max_lines, max_bytes)
            while batch := tailer.read(max_lines, max_bytes):
                got += batch
            tailer.stop()
        # A \r right before the newline is not part of the line.
        assert data(got) == [line.removesuffix(b"\r") for line in lines]
        assert [line.offset for line in got[1:]] == [line.end for line in got[:-1]]
        assert all(line.offset < line.end for line in got)


class TestDiscovery:
    def test_patterns_deduplicated(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A file matched by several patterns (and a pattern given twice) is read once."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"once\n")
        tailer = make_tailer(path, tmp_path / "*.log", tmp_path / "audit.*", path)
        assert data(drain(tailer)) == [b"once"]

    def test_compressed_rotations_skipped(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """``audit.log*`` never reads logrotate's compressed files as if they were lines."""
        (tmp_path / "audit.log").write_bytes(b"plain\n")
        (tmp_path / "audit.log.1").write_bytes(b"rotated\n")
        (tmp_path / "audit.log.2.gz").write_bytes(b"\x1f\x8b binary\n")
        lines = drain(make_tailer(tmp_path / "audit.log*"))
        assert sorted(data(lines)) == [b"plain", b"rotated"]

    def test_many_files(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """Hundreds of files under several patterns are all read, each line once."""
        for service in range(20):
            directory = tmp_path / f"svc{service}"
            directory.mkdir()
            for shard in range(15):
                (directory / f"audit-{shard}.log").write_bytes(b"%d-%d\n" % (service, shard))
        tailer = make_tailer(tmp_path / "svc1*" / "*.log", tmp_path / "**" / "audit-*.log")
        lines = drain(tailer)
        assert sorted(data(lines)) == sorted(
            b"%d-%d" % (s, n) for s in range(20) for n in range(15)
        )

    def test_recursive_glob(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """``**`` matches files at any depth, including directly under the root."""
        for relative in ("audit.log", "svc-a/audit.log", "svc-b/deep/audit.log"):
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(relative.encode() + b"\n")
        lines = drain(make_tailer(tmp_path / "**" / "audit.log"))
        assert sorted(data(lines)) == [b"audit.log", b"svc-a/audit.log", b"svc-b/deep/audit.log"]

    def test_new_file_in_watched_directory(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """With watchdog running, a file created later is found without waiting for a rescan."""
        tailer = make_tailer(tmp_path / "*.log", start=True, rescan_interval=60)
        assert drain(tailer) == []
        (tmp_path / "late.log").write_bytes(b"hello\n")
        assert data(collect(tailer, 1)) == [b"hello"]

    def test_directory_created_later(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A pattern whose directory does not exist yet starts working once it appears."""
        later = tmp_path / "later"
        tailer = make_tailer(later / "*.log", start=True, rescan_interval=0.05)
        assert drain(tailer) == []
        assert str(later) not in tailer.watched_directories
        later.mkdir()
        (later / "audit.log").write_bytes(b"first\n")
        assert data(collect(tailer, 1)) == [b"first"]
        eventually(lambda: str(later) in tailer.watched_directories, tailer)
        append(later / "audit.log", b"second\n")
        assert data(collect(tailer, 1)) == [b"second"]

    def test_rescan_without_watchdog(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """Without start() (no watchdog), the periodic rescan still finds new files."""
        tailer = make_tailer(tmp_path / "*.log", rescan_interval=0.05)
        assert drain(tailer) == []
        (tmp_path / "b.log").write_bytes(b"found\n")
        assert data(collect(tailer, 1)) == [b"found"]

    def test_wait_wakes_on_write(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """wait() returns soon after a write in a watched directory, long before its timeout."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\n")
        tailer = make_tailer(path, start=True, rescan_interval=60)
        drain(tailer)
        tailer.wait(0)  # consume wake-ups from the start
        writer = threading.Timer(0.1, append, args=(path, b"b\n"))
        writer.start()
        started = time.monotonic()
        tailer.wait(10)
        writer.join()
        assert time.monotonic() - started < 5
        assert data(collect(tailer, 1)) == [b"b"]


@needs_proc
class TestCloseInactive:
    def test_closed_then_reopened_on_change(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """An unchanged file's descriptor is closed; a later write reopens it where it was."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"one\n")
        tailer = make_tailer(path, close_inactive=0.1)
        first = drain(tailer)
        eventually(lambda: str(path) not in open_paths(), tailer)
        append(path, b"two\n")
        second = collect(tailer, 1)
        assert data(first + second) == [b"one", b"two"]
        assert second[0].offset == 4
        assert second[0].key == first[0].key
        assert str(path) in open_paths()

    def test_file_with_unread_lines_stays_open(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """A file is never closed for inactivity while it still has unread lines."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\nb\nc\n")
        tailer = make_tailer(path, close_inactive=0.01)
        assert len(tailer.read(1, 1 << 20)) == 1
        time.sleep(0.05)
        assert len(tailer.read(1, 1 << 20)) == 1
        assert str(path) in open_paths()


class TestApi:
    def test_exports(self) -> None:
        """The package exports the names the pipeline codes against."""
        from agent import files

        assert {"FileKey", "FilePosition", "Line", "Registry", "RegistryError", "Tailer"} <= set(
            files.__all__
        )
        assert FileKey(1, 2, "0" * 32).content_id == "0" * 32

    def test_rejects_no_patterns(self, registry: Registry) -> None:
        """A tailer without any pattern is a configuration error."""
        with pytest.raises(ValueError, match="pattern"):
            Tailer([], registry)


class ReadOnly:
    """The registry with its writing methods out of reach: what the tailer gets to see."""

    def __init__(self, registry: Registry) -> None:
        self.get = registry.get
        self.find_fingerprint = registry.find_fingerprint


class TestFacts:
    def test_a_new_file_is_opened_before_its_lines(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """The stream says "opened at 0" first; its lines carry that generation."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\nb\n")
        tailer = make_tailer(path)
        stream = tailer.read_stream(100, 1 << 20)
        key = key_at(str(path), 1024)
        assert key is not None
        assert stream[0] == Opened(key, str(path), 1, 0)
        assert [(e.data, e.generation) for e in stream[1:] if isinstance(e, Line)] == [
            (b"a", 1),
            (b"b", 1),
        ]

    def test_resume_is_opened_at_the_checkpoint(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A known file is opened at its acked offset."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"one\ntwo\n")
        key = key_at(str(path), 1024)
        assert key is not None
        registry.ack(key, str(path), 4)
        stream = make_tailer(path).read_stream(100, 1 << 20)
        assert stream[0] == Opened(key, str(path), 1, 4)

    def test_truncation_in_place_is_a_reset_with_a_newer_generation(
        self, tmp_path: Path, make_tailer: MakeTailer
    ) -> None:
        """Same first line after a truncation: a reset fact, then lines of the new generation."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"header\nA-long-line\n")
        tailer = make_tailer(path)
        first = drain(tailer)
        with path.open("r+b") as handle:
            handle.truncate(0)
        append(path, b"header\nC\n")
        again = drain(tailer)
        resets = [fact for fact in tailer.facts if isinstance(fact, Reset)]
        assert [(r.key, r.generation) for r in resets] == [(first[0].key, 2)]
        assert {line.generation for line in first} == {1}
        assert {line.generation for line in again} == {2}

    def test_rename_is_a_move(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A file renamed within the patterns is reported under its new name."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\n")
        tailer = make_tailer(tmp_path / "audit.log*")
        (line,) = drain(tailer)
        path.rename(tmp_path / "audit.log.1")
        eventually(lambda: any(isinstance(f, Moved) for f in tailer.facts), tailer)
        assert Moved(line.key, str(tmp_path / "audit.log.1")) in tailer.facts

    def test_copy_inherits_the_checkpoint(
        self, tmp_path: Path, registry: Registry, make_tailer: MakeTailer
    ) -> None:
        """A copy of a known file continues at the original's acked offset and window."""
        log = tmp_path / "audit.log"
        log.write_bytes(b"1\n2\n3\n")
        shipped = drain(make_tailer(log))
        registry.mark_sent(shipped[0].key, str(log), 6)
        registry.ack(shipped[0].key, str(log), 4)
        copy = tmp_path / "audit.log.1"
        shutil.copyfile(log, copy)
        tailer = make_tailer(copy)
        assert data(drain(tailer)) == [b"3"]
        (copied,) = [fact for fact in tailer.facts if isinstance(fact, Copied)]
        assert (copied.original, copied.acked, copied.sent) == (str(shipped[0].key), 4, 6)

    @needs_proc
    def test_deleted_and_drained_is_gone(self, tmp_path: Path, make_tailer: MakeTailer) -> None:
        """A deleted file, once read to its end and closed, is reported gone."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"a\n")
        tailer = make_tailer(path, start=True)
        (line,) = collect(tailer, 1)
        path.unlink()
        eventually(lambda: any(isinstance(f, Gone) for f in tailer.facts), tailer)
        assert Gone(line.key, str(path)) in tailer.facts

    def test_the_tailer_never_writes_the_registry(self, tmp_path: Path) -> None:
        """Given only the reading half of the registry, a copy, a truncation and a rename
        still work: every change is a fact in the stream, none is written."""
        state = tmp_path / "state"
        log = tmp_path / "audit.log"
        log.write_bytes(b"header\nA\n")
        registry = Registry(state)
        key = key_at(str(log), 1024)
        assert key is not None
        registry.ack(key, str(log), 9)
        registry.save()
        saved = registry.path.read_bytes()
        shutil.copyfile(log, tmp_path / "audit.log.1")
        tailer = Tailer([str(tmp_path / "audit.log*")], ReadOnly(registry), rescan_interval=0.05)
        stream = tailer.read(100, 1 << 20)
        with log.open("r+b") as handle:
            handle.truncate(0)
        append(log, b"header\n")
        deadline = time.monotonic() + 5
        while not any(isinstance(e, Reset) for e in stream) and time.monotonic() < deadline:
            stream += tailer.read(100, 1 << 20)
            tailer.wait(0.02)
        tailer.stop()
        kinds = {type(entry) for entry in stream}
        assert {Opened, Copied, Reset} <= kinds
        assert registry.path.read_bytes() == saved
        assert registry.get(key) is not None
        assert registry.get(key).acked == 9  # type: ignore[union-attr]
