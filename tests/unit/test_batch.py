"""Batching by count, bytes and time, and the bounded buffer's backpressure."""

from __future__ import annotations

import threading
import time

import pytest

from agent.batch import Batcher, BatchLimits, BoundedBuffer
from tests.fakes import FakeClock


class TestBatchLimits:
    @pytest.mark.parametrize(
        "kwargs", [{"max_events": 0}, {"max_bytes": 0}, {"max_wait": 0}, {"max_wait": -1}]
    )
    def test_bad_limits_fail_at_construction(self, kwargs: dict[str, float]) -> None:
        """Zero or negative limits are refused once, when built."""
        with pytest.raises(ValueError, match="must be positive"):
            BatchLimits(**kwargs)  # type: ignore[arg-type]


class TestBatcher:
    def test_closes_on_count(self) -> None:
        """The item that reaches max_events closes the batch, in arrival order."""
        batcher: Batcher[int] = Batcher(BatchLimits(3, 10_000, 5.0), FakeClock())
        assert batcher.add(1, 10) is None
        assert batcher.add(2, 10) is None
        batch = batcher.add(3, 10)
        assert batch is not None
        assert (batch.items, batch.size, batch.reason) == ([1, 2, 3], 30, "count")
        assert len(batcher) == 0

    def test_closes_on_bytes_without_exceeding(self) -> None:
        """An item that would overflow max_bytes closes the open batch and starts the next."""
        batcher: Batcher[str] = Batcher(BatchLimits(100, 100, 5.0), FakeClock())
        assert batcher.add("a", 60) is None
        batch = batcher.add("b", 60)
        assert batch is not None
        assert (batch.items, batch.size, batch.reason) == (["a"], 60, "bytes")
        assert len(batcher) == 1
        assert batcher.size == 60

    def test_exact_byte_limit_closes(self) -> None:
        """Reaching max_bytes exactly closes the batch with that item in it."""
        batcher: Batcher[str] = Batcher(BatchLimits(100, 100, 5.0), FakeClock())
        batcher.add("a", 40)
        batch = batcher.add("b", 60)
        assert batch is not None
        assert batch.items == ["a", "b"]

    def test_oversized_item_is_a_batch_of_one(self) -> None:
        """One item bigger than max_bytes is still sent, alone, never stuck."""
        batcher: Batcher[str] = Batcher(BatchLimits(100, 100, 5.0), FakeClock())
        batch = batcher.add("huge", 500)
        assert batch is not None
        assert (batch.items, batch.reason) == (["huge"], "bytes")

    def test_closes_on_time_since_first_item(self) -> None:
        """max_wait counts from the batch's first item, not the last."""
        clock = FakeClock()
        batcher: Batcher[int] = Batcher(BatchLimits(100, 10_000, 1.0), clock)
        assert batcher.poll() is None
        assert batcher.deadline() is None
        clock.now = 10.0
        batcher.add(1, 1)
        assert batcher.deadline() == 11.0
        clock.now = 10.9
        batcher.add(2, 1)
        assert batcher.poll() is None
        clock.now = 11.0
        batch = batcher.poll()
        assert batch is not None
        assert (batch.items, batch.reason) == ([1, 2], "time")
        assert batcher.deadline() is None

    def test_flush_sends_whatever_is_open(self) -> None:
        """Draining closes a partial batch at once; an empty one yields nothing."""
        batcher: Batcher[int] = Batcher(BatchLimits(100, 10_000, 60.0), FakeClock())
        assert batcher.flush() is None
        batcher.add(7, 3)
        batch = batcher.flush("drain")
        assert batch is not None
        assert (batch.items, batch.reason) == ([7], "drain")

    def test_room_counts_down(self) -> None:
        """room() says how many items fit before the count limit."""
        batcher: Batcher[int] = Batcher(BatchLimits(5, 10_000, 1.0), FakeClock())
        batcher.add(1, 1)
        batcher.add(2, 1)
        assert batcher.room() == 3


class TestBoundedBuffer:
    def test_fifo_and_accounting(self) -> None:
        """Items come out in order and the byte and item counts follow."""
        buffer: BoundedBuffer[str] = BoundedBuffer(10, 1000)
        for name in "abc":
            assert buffer.put(name, 10)
        assert (buffer.events, buffer.bytes) == (3, 30)
        assert buffer.get(2, timeout=0) == [("a", 10), ("b", 10)]
        assert (buffer.events, buffer.bytes) == (1, 10)

    def test_full_by_count_blocks(self) -> None:
        """When max_events items are buffered, put waits (and times out) instead of dropping."""
        buffer: BoundedBuffer[int] = BoundedBuffer(2, 1000)
        assert buffer.put(1, 1)
        assert buffer.put(2, 1)
        started = time.monotonic()
        assert not buffer.put(3, 1, timeout=0.1)
        assert time.monotonic() - started >= 0.09
        assert buffer.events == 2

    def test_full_by_bytes_blocks(self) -> None:
        """When the next item would pass max_bytes, put waits."""
        buffer: BoundedBuffer[int] = BoundedBuffer(100, 100)
        assert buffer.put(1, 80)
        assert not buffer.put(2, 30, timeout=0.05)
        assert buffer.put(3, 20, timeout=0.05)

    def test_oversized_item_admitted_when_empty(self) -> None:
        """An item larger than the byte bound enters an empty buffer rather than never."""
        buffer: BoundedBuffer[int] = BoundedBuffer(100, 100)
        assert buffer.put(1, 1000, timeout=0)
        assert not buffer.put(2, 1, timeout=0)

    def test_taking_unblocks_a_waiting_put(self) -> None:
        """A reader blocked on a full buffer resumes as soon as the sender takes items."""
        buffer: BoundedBuffer[int] = BoundedBuffer(1, 1000)
        buffer.put(1, 1)
        result: list[bool] = []
        writer = threading.Thread(target=lambda: result.append(buffer.put(2, 1, timeout=5)))
        writer.start()
        time.sleep(0.05)
        assert buffer.get(10, timeout=0) == [(1, 1)]
        writer.join(timeout=5)
        assert result == [True]
        assert buffer.get(10, timeout=0) == [(2, 1)]

    def test_put_many_takes_what_fits_in_order(self) -> None:
        """A group goes in up to the first entry that does not fit; the count says how many."""
        buffer: BoundedBuffer[str] = BoundedBuffer(3, 1000)
        assert buffer.put_many([("a", 10), ("b", 10)], timeout=0) == 2
        assert buffer.put_many([("c", 10), ("d", 10), ("e", 10)], timeout=0) == 1
        assert (buffer.events, buffer.bytes) == (3, 30)
        assert buffer.put_many([("d", 10)], timeout=0.02) == 0
        assert [item for item, _ in buffer.get(10, timeout=0)] == ["a", "b", "c"]

    def test_put_many_stops_at_the_byte_bound(self) -> None:
        """The byte bound cuts a group too, and an oversized first entry enters an empty buffer."""
        buffer: BoundedBuffer[int] = BoundedBuffer(100, 100)
        assert buffer.put_many([(1, 60), (2, 30), (3, 20)], timeout=0) == 2
        buffer.get(10, timeout=0)
        assert buffer.put_many([(4, 500), (5, 1)], timeout=0) == 1
        assert buffer.bytes == 500

    def test_put_many_wakes_a_waiting_getter_and_fails_once_closed(self) -> None:
        """A getter blocked on an empty buffer gets the group; after close nothing goes in."""
        buffer: BoundedBuffer[int] = BoundedBuffer(10, 1000)
        taken: list[list[tuple[int, int]]] = []
        reader = threading.Thread(target=lambda: taken.append(buffer.get(10, timeout=5)))
        reader.start()
        time.sleep(0.05)
        assert buffer.put_many([(1, 1), (2, 1)], timeout=0) == 2
        reader.join(timeout=5)
        assert taken == [[(1, 1), (2, 1)]]
        buffer.close()
        assert buffer.put_many([(3, 1)], timeout=0) == 0
        assert buffer.put_many([], timeout=0) == 0

    def test_get_times_out_empty(self) -> None:
        """get returns an empty list after its timeout when nothing arrives."""
        buffer: BoundedBuffer[int] = BoundedBuffer(1, 1000)
        assert buffer.get(5, timeout=0.02) == []

    def test_close_wakes_everyone_and_keeps_items_for_draining(self) -> None:
        """After close, puts fail, blocked putters wake, and buffered items can still be taken."""
        buffer: BoundedBuffer[int] = BoundedBuffer(1, 1000)
        buffer.put(1, 1)
        result: list[bool] = []
        writer = threading.Thread(target=lambda: result.append(buffer.put(2, 1, timeout=5)))
        writer.start()
        time.sleep(0.05)
        buffer.close()
        writer.join(timeout=5)
        assert result == [False]
        assert buffer.closed
        assert buffer.get(10, timeout=5) == [(1, 1)]
        assert buffer.get(10, timeout=5) == []

    def test_bounds_must_be_positive(self) -> None:
        """A zero-sized buffer would deadlock; it is refused."""
        with pytest.raises(ValueError, match="positive"):
            BoundedBuffer(0, 10)
