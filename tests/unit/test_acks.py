"""The ordered finalizer: checkpoints advance only over a contiguous acknowledged prefix."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.acks import Checkpoint, Checkpointer, OrderedFinalizer
from common.retry import Retrier, RetryPolicy
from tests.fakes import FakeClock


def register_lines(
    finalizer: OrderedFinalizer[str], key: str, lengths: list[int], start: int = 0
) -> list:
    tickets = []
    offset = start
    for length in lengths:
        tickets.append(finalizer.register(key, f"/logs/{key}", offset, offset + length))
        offset += length
    return tickets


class TestOrderedFinalizer:
    def test_in_order_acks_advance_each_time(self) -> None:
        """Acknowledging lines in read order moves the checkpoint to each line's end."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        a, b, c = register_lines(finalizer, "f", [10, 20, 30])
        assert finalizer.ack(a) == Checkpoint("f", "/logs/f", 10)
        assert finalizer.ack(b) == Checkpoint("f", "/logs/f", 30)
        assert finalizer.ack(c) == Checkpoint("f", "/logs/f", 60)
        assert finalizer.pending == 0
        assert finalizer.files() == []

    def test_out_of_order_ack_waits_for_the_gap(self) -> None:
        """A later line's ack does not move the checkpoint until every earlier line is acked."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        a, b, c = register_lines(finalizer, "f", [10, 20, 30])
        assert finalizer.ack(c) is None
        assert finalizer.ack(b) is None
        assert finalizer.pending_for("f") == 1
        assert finalizer.ack(a) == Checkpoint("f", "/logs/f", 60)

    def test_files_are_independent(self) -> None:
        """A pending line in one file never holds back another file's checkpoint."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        (a1,) = register_lines(finalizer, "a", [5])
        (b1,) = register_lines(finalizer, "b", [7])
        assert finalizer.ack(b1) == Checkpoint("b", "/logs/b", 7)
        assert finalizer.files() == ["a"]
        assert finalizer.ack(a1) == Checkpoint("a", "/logs/a", 5)

    def test_double_ack_is_a_bug(self) -> None:
        """Every line has exactly one fate: a second acknowledgement raises."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        (a,) = register_lines(finalizer, "f", [5])
        finalizer.ack(a)
        with pytest.raises(ValueError, match="twice"):
            finalizer.ack(a)

    def test_restart_at_earlier_offset_starts_a_new_sequence(self) -> None:
        """After a truncation the checkpoint counts from the new start; old lines still settle."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        old = register_lines(finalizer, "f", [10, 10], start=100)
        new = register_lines(finalizer, "f", [4], start=0)
        assert finalizer.ack(new[0]) == Checkpoint("f", "/logs/f", 4)
        assert finalizer.ack(old[1]) is None
        assert finalizer.ack(old[0]) is None
        assert finalizer.pending == 0

    def test_detach_stops_old_lines_moving_the_checkpoint(self) -> None:
        """Once detached (the registry was reset), earlier lines settle without a checkpoint."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        old = register_lines(finalizer, "f", [10, 10])
        assert finalizer.detach("f") == 2
        assert finalizer.ack(old[0]) is None
        (new,) = register_lines(finalizer, "f", [3], start=20)
        assert finalizer.ack(old[1]) is None
        assert finalizer.ack(new) == Checkpoint("f", "/logs/f", 23)
        assert finalizer.pending == 0

    def test_ack_all_reports_the_furthest_checkpoint_per_file(self) -> None:
        """Settling many lines at once yields one checkpoint per file that moved."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        a = register_lines(finalizer, "a", [1, 2, 3])
        b = register_lines(finalizer, "b", [4, 5])
        moved = finalizer.ack_all([a[2], a[0], b[1], a[1]])
        assert moved == {"a": Checkpoint("a", "/logs/a", 6)}
        assert finalizer.ack_all([b[0]]) == {"b": Checkpoint("b", "/logs/b", 9)}

    def test_line_ending_before_it_starts_is_refused(self) -> None:
        """A negative-length line is a caller bug and raises at registration."""
        with pytest.raises(ValueError, match="before it starts"):
            OrderedFinalizer().register("f", "/x", 10, 5)

    @given(
        lengths=st.lists(st.integers(1, 50), min_size=1, max_size=60),
        seed=st.integers(0, 2**32),
        cut=st.integers(0, 60),
    )
    def test_checkpoint_is_end_of_longest_acked_prefix(
        self, lengths: list[int], seed: int, cut: int
    ) -> None:
        """For any ack order and any subset acked, the checkpoint is the contiguous prefix end."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        tickets = register_lines(finalizer, "f", lengths)
        order = list(range(len(tickets)))
        random.Random(seed).shuffle(order)
        acked = set(order[: min(cut, len(order))])
        checkpoint = 0
        for index in order[: len(acked)]:
            moved = finalizer.ack(tickets[index])
            if moved is not None:
                assert moved.end > checkpoint
                checkpoint = moved.end
        prefix = 0
        while prefix < len(tickets) and prefix in acked:
            prefix += 1
        assert checkpoint == sum(lengths[:prefix])
        assert finalizer.pending == len(tickets) - len(acked)


class Entry:
    def __init__(self) -> None:
        self.acked = 0
        self.sent = 0


class MemoryStore:
    """A registry kept in memory; ``failures`` saves raise OSError before one succeeds."""

    def __init__(self, failures: int = 0) -> None:
        self.entries: dict[str, Entry] = {}
        self.saved: list[dict[str, tuple[int, int]]] = []
        self.failures = failures

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def ack(self, key: str, path: str, end: int) -> None:
        entry = self.entries.setdefault(key, Entry())
        entry.acked = max(entry.acked, end)
        entry.sent = max(entry.sent, end)

    def mark_sent(self, key: str, path: str, end: int) -> None:
        entry = self.entries.setdefault(key, Entry())
        entry.sent = max(entry.sent, end)

    def save(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        self.saved.append({k: (e.acked, e.sent) for k, e in self.entries.items()})


FAST = RetryPolicy(base=0.001, cap=0.002, floor=0.001)


class TestCheckpointer:
    def test_settling_moves_the_store_and_throttles_writes(self) -> None:
        """Checkpoints reach the store at once; writes to disk happen at most per interval."""
        clock = FakeClock()
        store = MemoryStore()
        checkpoints: Checkpointer[str] = Checkpointer(store, interval=1.0, clock=clock)
        a, b = register_lines(checkpoints.finalizer, "f", [10, 10])
        checkpoints.settle([a])
        assert store.saved == [{"f": (10, 10)}]
        checkpoints.settle([b])
        assert store.entries["f"].acked == 20
        assert len(store.saved) == 1  # within the interval: not written yet
        clock.now = 1.5
        checkpoints.save()
        assert store.saved[-1] == {"f": (20, 20)}

    def test_window_is_written_before_sending(self) -> None:
        """mark_sent always writes, whatever the interval, so the window is on disk first."""
        store = MemoryStore()
        checkpoints: Checkpointer[str] = Checkpointer(store, interval=60.0, clock=FakeClock())
        checkpoints.save()
        assert checkpoints.mark_sent({"f": ("/logs/f", 500)})
        assert store.saved[-1] == {"f": (0, 500)}

    def test_required_write_retries_until_it_works(self) -> None:
        """A failing write of the window is retried (nothing may be sent before it lands)."""
        store = MemoryStore(failures=3)
        checkpoints: Checkpointer[str] = Checkpointer(store, retrier=Retrier(FAST))
        assert checkpoints.mark_sent({"f": ("/logs/f", 5)})
        assert store.saved == [{"f": (0, 5)}]

    def test_required_write_gives_up_only_when_interrupted(self) -> None:
        """At shutdown the interrupt ends the retries; the caller then sends nothing."""
        store = MemoryStore(failures=1000)
        interrupt = threading.Event()
        interrupt.set()
        checkpoints: Checkpointer[str] = Checkpointer(store, retrier=Retrier(FAST, interrupt))
        assert not checkpoints.mark_sent({"f": ("/logs/f", 5)})

    def test_throttled_write_failure_waits_for_the_next_one(self) -> None:
        """A failed periodic write is not retried in a loop; the next save catches up."""
        store = MemoryStore(failures=1)
        checkpoints: Checkpointer[str] = Checkpointer(store, interval=0.0, retrier=Retrier(FAST))
        (a,) = register_lines(checkpoints.finalizer, "f", [7])
        checkpoints.settle([a])
        assert store.saved == []
        checkpoints.save()
        assert store.saved == [{"f": (7, 7)}]

    def test_reset_in_the_store_detaches_older_lines(self) -> None:
        """When the store's checkpoint went back (a truncated file), old lines stop counting."""
        store = MemoryStore()
        checkpoints: Checkpointer[str] = Checkpointer(store, clock=FakeClock())
        a, b, c = register_lines(checkpoints.finalizer, "f", [10, 10, 10])
        checkpoints.settle([a])
        store.entries["f"].acked = 0  # the tailer reset this file
        checkpoints.settle([b])
        assert store.entries["f"].acked == 0
        (fresh,) = register_lines(checkpoints.finalizer, "f", [4], start=30)
        checkpoints.settle([c, fresh])
        assert store.entries["f"].acked == 34
