"""The reader thread without a node: real files, the real tailer and normalizer, a bounded
buffer. Lines become parcels, rejections or skips in read order; a full buffer pauses
reading; ``stop`` ends the loop even while it waits for room; the buffer is closed when the
loop ends, so the settler drains and finishes."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from agent.batch import BoundedBuffer
from agent.evidence.chains import Chains
from agent.files import Registry, Tailer
from agent.items import Entry, Item
from agent.metrics import Health, Metrics
from agent.normalize import NormalizeOptions, Normalizer, Rejected, Skipped
from agent.reader import Reader
from common.stage import Stage
from indexer.sink import Parcel


def record(n: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"ev-{n}",
            "created": "2026-01-01T00:00:00Z",
            "action": "Flow Created",
            "userId": f"u{n}",
        }
    )


def reader(
    tmp_path: Path,
    *,
    once: bool = True,
    events: int = 1000,
    line_max: int = 65536,
) -> tuple[Reader, BoundedBuffer[Entry], Metrics]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    state = tmp_path / "state"
    tailer = Tailer(
        [str(logs / "*.log")],
        Registry(state),
        rescan_interval=0.1,
        exclude=[state],
        line_max=line_max,
    )
    buffer: BoundedBuffer[Entry] = BoundedBuffer(events, 1 << 24)
    metrics = Metrics()
    made = Reader(
        tailer,
        Normalizer(NormalizeOptions(host_name="pod-a")),
        buffer,
        chains=Chains("pod-a", lambda _key, _content, _offset: None),
        host_name="pod-a",
        line_max=line_max,
        metrics=metrics,
        health=Health(),
        once=once,
    )
    return made, buffer, metrics


def drained(buffer: BoundedBuffer[Entry]) -> list[Entry]:
    taken: list[Entry] = []
    while batch := buffer.get(1000, timeout=0.01):
        taken.extend(entry for entry, _size in batch)
    return taken


def items(entries: list[Entry]) -> list[Item]:
    return [entry for entry in entries if isinstance(entry, Item)]


class TestOnce:
    def test_every_line_in_read_order_then_the_buffer_is_closed(self, tmp_path: Path) -> None:
        made, buffer, metrics = reader(tmp_path)
        lines = [record(0), b"not json", record(1), b'{"level":"info","msg":"started"}']
        (tmp_path / "logs" / "a.log").write_bytes(b"\n".join(lines) + b"\n" + record(2)[:10])
        made.start()
        made.run()
        made.close()
        assert buffer.closed
        read = items(drained(buffer))
        kinds = [type(item.outcome) for item in read]
        assert kinds == [Parcel, Rejected, Parcel, Skipped]
        assert [item.line.offset for item in read] == sorted(item.line.offset for item in read)
        assert isinstance(read[0].outcome, Parcel)
        assert read[0].outcome.event_id == "ev-0"
        assert metrics.snapshot().read == 4
        assert made.partial == {str(tmp_path / "logs" / "a.log"): 10}  # the unfinished line
        assert made.patterns == [str(tmp_path / "logs" / "*.log")]

    def test_events_are_chained_in_read_order(self, tmp_path: Path) -> None:
        made, buffer, _ = reader(tmp_path)
        (tmp_path / "logs" / "a.log").write_bytes(record(0) + b"\n" + record(1) + b"\n")
        made.start()
        made.run()
        made.close()
        read = items(drained(buffer))
        first, second = read[0].chain, read[1].chain
        assert (first.head.seq, second.head.seq) == (1, 2)
        assert second.prev == first.head.hash

    def test_an_over_long_line_is_rejected_at_decode(self, tmp_path: Path) -> None:
        made, buffer, _ = reader(tmp_path, line_max=64)
        (tmp_path / "logs" / "a.log").write_bytes(b'{"x":"' + b"y" * 200 + b'"}\n')
        made.start()
        made.run()
        made.close()
        (only,) = items(drained(buffer))
        assert isinstance(only.outcome, Rejected)
        assert only.outcome.stage == Stage.DECODE
        assert "longer than LINE_MAX_BYTES (64)" in only.outcome.reason


class TestStop:
    def test_stop_ends_a_reader_waiting_for_room(self, tmp_path: Path) -> None:
        """A full buffer pauses reading; stop ends the wait, and what was not buffered is
        left for the next start."""
        made, buffer, metrics = reader(tmp_path, once=False, events=2)
        (tmp_path / "logs" / "a.log").write_bytes(b"".join(record(n) + b"\n" for n in range(5)))
        made.start()
        thread = threading.Thread(target=made.run)
        thread.start()
        try:
            for _ in range(100):
                if buffer.events == 2:
                    break
                thread.join(0.05)
            assert buffer.events == 2  # full (a fact counts as an entry too)
            thread.join(0.3)
            assert thread.is_alive()  # waiting for room
            made.stop()
            thread.join(5)
            assert not thread.is_alive()
        finally:
            made.stop()
            made.close()
        assert buffer.closed
        buffered = items(drained(buffer))
        assert 0 < len(buffered) < 5
        assert metrics.snapshot().read == len(buffered)

    def test_a_buffer_closed_by_the_other_side_ends_the_loop(self, tmp_path: Path) -> None:
        made, buffer, _ = reader(tmp_path, once=False, events=1)
        (tmp_path / "logs" / "a.log").write_bytes(record(0) + b"\n" + record(1) + b"\n")
        made.start()
        thread = threading.Thread(target=made.run)
        thread.start()
        try:
            for _ in range(100):
                if buffer.events == 1:
                    break
                thread.join(0.05)
            buffer.close()
            thread.join(5)
            assert not thread.is_alive()
        finally:
            made.stop()
            made.close()

    def test_stop_before_run_reads_nothing(self, tmp_path: Path) -> None:
        made, buffer, metrics = reader(tmp_path, once=False)
        (tmp_path / "logs" / "a.log").write_bytes(record(0) + b"\n")
        made.start()
        made.stop()
        made.run()
        made.close()
        assert buffer.closed
        assert metrics.snapshot().read == 0
        assert made.behind > 0  # the file's bytes are still to be read
