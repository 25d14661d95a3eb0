"""The ordered finalizer and the checkpointer: checkpoints advance only over a contiguous
acknowledged prefix of the current generation, and only the checkpointer writes them."""

from __future__ import annotations

import random
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.acks import Checkpointer, OrderedFinalizer, ReplayWindow, Ticket, Watermark
from agent.evidence.chains import Ledger, Place
from agent.files import Copied, FileKey, Gone, Moved, Opened, Reset
from chain.link import GENESIS, Head
from common.retry import Retrier, RetryPolicy
from tests.fakes import FakeClock, MemoryStore


def register_lines(
    finalizer: OrderedFinalizer[Any],
    key: Any,
    lengths: list[int],
    start: int = 0,
    generation: int = 1,
) -> list[Ticket[Any]]:
    tickets = []
    offset = start
    for length in lengths:
        path = f"/logs/{key}"
        tickets.append(finalizer.register(key, generation, path, offset, offset + length))
        offset += length
    return tickets


class TestOrderedFinalizer:
    def test_in_order_acks_advance_each_time(self) -> None:
        """Acknowledging lines in read order moves the checkpoint to each line's end."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        a, b, c = register_lines(finalizer, "f", [10, 20, 30])
        assert finalizer.ack(a) == Watermark("f", "/logs/f", 10)
        assert finalizer.ack(b) == Watermark("f", "/logs/f", 30)
        assert finalizer.ack(c) == Watermark("f", "/logs/f", 60)
        assert finalizer.pending == 0
        assert finalizer.files() == []

    def test_out_of_order_ack_waits_for_the_gap(self) -> None:
        """A later line's ack does not move the checkpoint until every earlier line is acked."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        a, b, c = register_lines(finalizer, "f", [10, 20, 30])
        assert finalizer.ack(c) is None
        assert finalizer.ack(b) is None
        assert finalizer.pending_for("f") == 1
        assert finalizer.ack(a) == Watermark("f", "/logs/f", 60)

    def test_files_are_independent(self) -> None:
        """A pending line in one file never holds back another file's checkpoint."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        (a1,) = register_lines(finalizer, "a", [5])
        (b1,) = register_lines(finalizer, "b", [7])
        assert finalizer.ack(b1) == Watermark("b", "/logs/b", 7)
        assert finalizer.files() == ["a"]
        assert finalizer.ack(a1) == Watermark("a", "/logs/a", 5)

    def test_double_ack_is_a_bug(self) -> None:
        """Every line has exactly one fate: a second acknowledgement raises."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        (a,) = register_lines(finalizer, "f", [5])
        finalizer.ack(a)
        with pytest.raises(ValueError, match="twice"):
            finalizer.ack(a)

    def test_a_newer_generation_starts_a_new_sequence(self) -> None:
        """After a truncation the checkpoint counts from the new start; old lines still settle."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        old = register_lines(finalizer, "f", [10, 10], start=100, generation=1)
        new = register_lines(finalizer, "f", [4], start=0, generation=2)
        assert finalizer.ack(new[0]) == Watermark("f", "/logs/f", 4)
        assert finalizer.ack(old[1]) is None
        assert finalizer.ack(old[0]) is None
        assert finalizer.pending == 0

    def test_stale_acks_are_dropped_by_comparison(self) -> None:
        """Once a newer generation began, acks of older lines never move the checkpoint,
        wherever their offsets lie."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        old = register_lines(finalizer, "f", [10, 10], generation=3)
        assert finalizer.begin("f", 4)
        assert finalizer.ack(old[0]) is None
        (new,) = register_lines(finalizer, "f", [3], start=20, generation=4)
        assert finalizer.ack(old[1]) is None
        assert finalizer.ack(new) == Watermark("f", "/logs/f", 23)
        assert finalizer.pending == 0

    def test_a_line_of_an_older_generation_registered_late_is_stale(self) -> None:
        """Lines read before a truncation but registered after it settle without moving."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        finalizer.begin("f", 2)
        (late,) = register_lines(finalizer, "f", [5], start=50, generation=1)
        assert late.stream is None
        assert finalizer.ack(late) is None
        assert finalizer.pending == 0
        assert finalizer.generation("f") == 2

    def test_an_older_generation_does_not_begin(self) -> None:
        """Generations only grow: beginning an older or equal one changes nothing."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        assert finalizer.begin("f", 5)
        (a,) = register_lines(finalizer, "f", [5], generation=5)
        assert not finalizer.begin("f", 5)
        assert not finalizer.begin("f", 4)
        assert finalizer.ack(a) == Watermark("f", "/logs/f", 5)

    def test_retire_forgets_a_gone_file_once_settled(self) -> None:
        """A gone file's generation is kept while lines are pending, then dropped."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        (a,) = register_lines(finalizer, "f", [5], generation=7)
        finalizer.retire("f")
        assert finalizer.generation("f") == 7
        finalizer.ack(a)
        finalizer.retire("f")
        assert finalizer.generation("f") is None

    def test_ack_all_reports_the_furthest_checkpoint_per_file(self) -> None:
        """Settling many lines at once yields one checkpoint per file that moved."""
        finalizer: OrderedFinalizer[str] = OrderedFinalizer()
        a = register_lines(finalizer, "a", [1, 2, 3])
        b = register_lines(finalizer, "b", [4, 5])
        moved = finalizer.ack_all([a[2], a[0], b[1], a[1]])
        assert moved == {"a": Watermark("a", "/logs/a", 6)}
        assert finalizer.ack_all([b[0]]) == {"b": Watermark("b", "/logs/b", 9)}

    def test_line_ending_before_it_starts_is_refused(self) -> None:
        """A negative-length line is a caller bug and raises at registration."""
        with pytest.raises(ValueError, match="before it starts"):
            OrderedFinalizer().register("f", 1, "/x", 10, 5)

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


FAST = RetryPolicy(base=0.001, cap=0.002, floor=0.001)
F = FileKey(1, 2, "a" * 32)
COPY = FileKey(1, 3, "a" * 32)


class TestCheckpointer:
    def test_settling_moves_the_store_and_throttles_writes(self) -> None:
        """Checkpoints reach the store at once; writes to disk happen at most per interval."""
        clock = FakeClock()
        store = MemoryStore()
        checkpoints = Checkpointer(store, interval=1.0, clock=clock)
        a, b = register_lines(checkpoints.finalizer, F, [10, 10])
        checkpoints.settle([a])
        assert store.saved == [{F: (10, 10)}]
        checkpoints.settle([b])
        assert store.entries[F].acked == 20
        assert len(store.saved) == 1  # within the interval: not written yet
        clock.now = 1.5
        checkpoints.save()
        assert store.saved[-1] == {F: (20, 20)}

    def test_window_is_written_before_sending(self) -> None:
        """mark_sent always writes, whatever the interval, so the window is on disk first."""
        store = MemoryStore()
        checkpoints = Checkpointer(store, interval=60.0, clock=FakeClock())
        checkpoints.save()
        assert checkpoints.mark_sent({F: ("/logs/f", 500)})
        assert store.saved[-1] == {F: (0, 500)}

    def test_required_write_retries_until_it_works(self) -> None:
        """A failing write of the window is retried (nothing may be sent before it lands)."""
        clock = FakeClock()
        store = MemoryStore(failures=3)
        retrier = Retrier(FAST, clock=clock, sleep=clock.sleep)
        checkpoints = Checkpointer(store, retrier=retrier, clock=clock)
        assert checkpoints.mark_sent({F: ("/logs/f", 5)})
        assert store.saved == [{F: (0, 5)}]
        assert len(clock.slept) == 3

    def test_required_write_gives_up_only_when_interrupted(self) -> None:
        """At shutdown the interrupt ends the retries; the caller then sends nothing."""
        store = MemoryStore(failures=1000)
        interrupt = threading.Event()
        interrupt.set()
        checkpoints = Checkpointer(store, retrier=Retrier(FAST, interrupt))
        assert not checkpoints.mark_sent({F: ("/logs/f", 5)})

    def test_throttled_write_failure_waits_for_the_next_one(self) -> None:
        """A failed periodic write is not retried in a loop; the next save catches up."""
        clock = FakeClock()
        store = MemoryStore(failures=1)
        retrier = Retrier(FAST, clock=clock, sleep=clock.sleep)
        checkpoints = Checkpointer(store, interval=0.0, retrier=retrier, clock=clock)
        (a,) = register_lines(checkpoints.finalizer, F, [7])
        checkpoints.settle([a])
        assert store.saved == []
        assert clock.slept == []
        checkpoints.save()
        assert store.saved == [{F: (7, 7)}]


class TestFacts:
    def test_reset_moves_the_checkpoint_back_and_drops_older_acks(self) -> None:
        """A reset fact puts the checkpoint at 0; lines read before it no longer move it."""
        store = MemoryStore()
        checkpoints = Checkpointer(store, clock=FakeClock())
        checkpoints.apply(Opened(F, "/logs/f", 1, 0))
        a, b, c = register_lines(checkpoints.finalizer, F, [10, 10, 10], generation=1)
        checkpoints.settle([a])
        assert store.entries[F].acked == 10
        checkpoints.apply(Reset(F, "/logs/f", 2))
        assert (store.entries[F].acked, store.entries[F].sent) == (0, 0)
        checkpoints.settle([b])
        assert store.entries[F].acked == 0
        (fresh,) = register_lines(checkpoints.finalizer, F, [4], start=0, generation=2)
        checkpoints.settle([c, fresh])
        assert store.entries[F].acked == 4

    def test_reset_of_an_unknown_file_writes_nothing(self) -> None:
        """A reset for a file the registry never saw creates no entry."""
        store = MemoryStore()
        Checkpointer(store).apply(Reset(F, "/logs/f", 1))
        assert store.entries == {}

    def test_copy_inherits_acked_and_window(self) -> None:
        """A copy starts with its original's checkpoint and replay window."""
        store = MemoryStore()
        checkpoints = Checkpointer(store)
        checkpoints.apply(Copied(COPY, "/logs/f.1", 1, str(F), 40, 55))
        assert (store.entries[COPY].acked, store.entries[COPY].sent) == (40, 55)
        (line,) = register_lines(checkpoints.finalizer, COPY, [5], start=40)
        checkpoints.settle([line])
        assert store.entries[COPY].acked == 45

    def test_copy_inherits_the_chain_head_at_its_checkpoint(self) -> None:
        """The copy's entry holds its original's chain head at the inherited offset, so an
        agent killed before any line of the copy was acknowledged resumes the same chain."""
        store = MemoryStore()
        checkpoints = Checkpointer(store)
        head = {"stream": "s" * 32, "seq": 7, "hash": "h" * 64, "at": 40}
        sent = {"stream": "s" * 32, "seq": 9, "hash": "i" * 64, "at": 55}
        checkpoints.apply(Copied(COPY, "/logs/f.1", 1, str(F), 40, 55, head, sent))
        assert (store.entries[COPY].chain, store.entries[COPY].pending) == (head, sent)

    def test_a_stale_copy_fact_changes_nothing(self) -> None:
        """A fact of an older generation than the one already begun is ignored."""
        store = MemoryStore()
        checkpoints = Checkpointer(store)
        checkpoints.apply(Opened(COPY, "/logs/f.1", 5, 0))
        checkpoints.apply(Copied(COPY, "/logs/f.1", 4, str(F), 40, 55))
        assert COPY not in store.entries

    def test_move_renames_and_gone_retires(self) -> None:
        """A move updates the path; a gone file's generation is forgotten once settled."""
        store = MemoryStore()
        checkpoints = Checkpointer(store)
        checkpoints.apply(Opened(F, "/logs/f", 3, 0))
        checkpoints.apply(Moved(F, "/logs/f.1"))
        assert store.paths[F] == "/logs/f.1"
        checkpoints.apply(Gone(F, "/logs/f.1"))
        assert checkpoints.finalizer.generation(F) is None

    def test_only_the_checkpointer_writes_the_registry(self) -> None:
        """No module but agent.acks calls a registry method that changes it."""
        writers = {"ack", "mark_sent", "reset", "move", "forget"}
        root = Path(__file__).resolve().parents[2]
        offenders = []
        for path in [*(root / "agent").rglob("*.py"), *(root / "indexer").rglob("*.py")]:
            if path.name in {"acks.py", "registry.py"}:
                continue
            text = path.read_text()
            for name in writers:
                if re.search(rf"(registry|store|positions)\.{name}\(", text):
                    offenders.append(f"{path.relative_to(root)}: {name}")
        assert offenders == []


class TestTheReplayWindowHasOneOwner:
    """The checkpointer records the window in memory and in the registry at once: before a
    request, and when a copy inherits its original's ``sent``."""

    ORIGINAL = FileKey(7, 11, "c" * 32)
    COPY = FileKey(7, 12, "c" * 32)

    def test_mark_sent_records_both(self) -> None:
        store = MemoryStore()
        checkpoints = Checkpointer(store)
        assert not checkpoints.replaying
        assert checkpoints.mark_sent({self.ORIGINAL: ("/logs/a.log", 40)})
        assert store.entries[self.ORIGINAL].sent == 40
        assert checkpoints.replaying
        assert checkpoints.covers(self.ORIGINAL, 30)
        assert not checkpoints.covers(self.ORIGINAL, 40)

    def test_a_copy_tells_the_window_what_it_inherits(self) -> None:
        store = MemoryStore()
        checkpoints = Checkpointer(store)
        copied = Copied(self.COPY, "/logs/a.log.1", 1, str(self.ORIGINAL), acked=10, sent=30)
        checkpoints.apply(copied)
        assert (store.entries[self.COPY].acked, store.entries[self.COPY].sent) == (10, 30)
        assert checkpoints.covers(self.COPY, 20)
        assert not checkpoints.covers(self.COPY, 30)

    def test_the_window_from_the_registry_at_start(self) -> None:
        positions = [(self.ORIGINAL.content_id, str(self.ORIGINAL), 10, 50)]
        checkpoints = Checkpointer(MemoryStore(), window=ReplayWindow(positions))
        assert checkpoints.covers(self.COPY, 49)  # same content: a copy replays it too
        assert not checkpoints.covers(self.COPY, 50)


class TestTheLedgerGoesThroughTheCheckpointer:
    """A line's chain place and its refusal are noted by the checkpointer, which hands them
    to the ledger; the chain head at a checkpoint is the ledger's."""

    def test_place_and_refusal_reach_the_ledger(self) -> None:
        ledger = Ledger()
        checkpoints = Checkpointer(MemoryStore(), ledger=ledger)
        key = FileKey(7, 11, "c" * 32)
        head = Head("s", 1, "1" * 64, "ev-1")
        checkpoints.register(key, 1, "/logs/a.log", 0, 10, place=Place(head, GENESIS))
        checkpoints.refused(key, 10, "refused: 400")
        settled_head, gaps = ledger.settle(str(key), 10)
        assert settled_head == head
        assert [(g.seq, g.event_id, g.reason) for g in gaps] == [(1, "ev-1", "refused: 400")]

    def test_without_a_ledger_places_are_not_kept(self) -> None:
        checkpoints = Checkpointer(MemoryStore())
        key = FileKey(7, 11, "c" * 32)
        place = Place(Head("s", 1, "1" * 64, "ev-1"), GENESIS)
        ticket = checkpoints.register(key, 1, "/logs/a.log", 0, 10, place=place)
        checkpoints.refused(key, 10, "refused: 400")
        checkpoints.settle([ticket])
        assert checkpoints.pending == 0
