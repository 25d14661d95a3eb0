"""The settler with a fake sink, a fake dead-letter file and a fake clock: every line gets
one fate, checkpoints move only over settled lines of the current generation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.acks import Checkpointer, ReplayWindow
from agent.deadletter import DeadLetter
from agent.evidence.chains import Ledger, Place
from agent.evidence.keeper import Keeper
from agent.files import FileKey, Line, Opened, Reset
from agent.items import Entry, Item
from agent.metrics import Metrics
from agent.normalize import Rejected, Skipped
from agent.settler import TAKEN, Claim, Settler
from chain.link import Head
from common.stage import Stage
from indexer.outcomes import Delivered, Duplicate, ItemOutcome, Refused, Retry
from indexer.sink import EventResult, Parcel, Shipment
from tests.fakes import FakeClock, MemoryStore, retrier_on

PLACE = Place(Head.genesis("test-stream"))  # the chain is the ledger's business, not tested here
NO_STATE = Path("/nonexistent/appmixer-audit-chain-state")  # never written: no key, no save

KEY = FileKey(7, 11, "c" * 32)
PATH = "/logs/audit.log"
EVENTS, CHANGES = "logs-appmixer.audit-t", "logs-appmixer.audit_changes-t"
MAPPING = Refused(400, "document_parsing_exception", "failed to parse [user.id]")

Answer = Callable[[Shipment[Claim]], ItemOutcome]


class FakeSink:
    """Answers each shipment with ``answer(shipment)``; remembers what it was sent and what
    the store held at that moment (the window must be on disk before a request)."""

    def __init__(self, store: MemoryStore, answer: Answer | None = None) -> None:
        self.store = store
        self.answer = answer if answer is not None else (lambda _s: Delivered())
        self.shipped: list[Shipment[Claim]] = []
        self.saved_before: list[dict[FileKey, tuple[int, int]]] = []
        self.refused_changes: dict[str, list[tuple[str, Refused]]] = {}

    def ship(self, shipments: Sequence[Shipment[Claim]]) -> list[EventResult[Claim]]:
        self.saved_before.append(self.store.saved[-1] if self.store.saved else {})
        self.shipped.extend(shipments)
        results = []
        for shipment in shipments:
            result = EventResult(shipment, self.answer(shipment))
            result.rejected_changes = self.refused_changes.get(shipment.event_id, [])
            result.changes_delivered = len(shipment.parcel.changes) - len(result.rejected_changes)
            results.append(result)
        return results


class FakeDeadLetters:
    """Keeps dead letters in a list; the first ``failures`` writes raise OSError."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.letters: list[DeadLetter] = []
        self.attempts = 0

    def write(self, letters: Sequence[DeadLetter]) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        self.letters.extend(letters)


class Rig:
    """A settler wired to fakes, with a fake clock and an interrupt."""

    def __init__(
        self,
        answer: Answer | None = None,
        *,
        dead_letter_failures: int = 0,
        window: ReplayWindow | None = None,
        interrupt_after: float | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.interrupt = threading.Event()
        self.store = MemoryStore()
        self.sink = FakeSink(self.store, answer)
        self.dead_letters = FakeDeadLetters(dead_letter_failures)
        self.metrics = Metrics()
        self.retrier = retrier_on(self.clock, self.interrupt, self._sleep)
        self.interrupt_after = interrupt_after
        self.ledger = Ledger()
        self.checkpoints = Checkpointer(
            self.store,
            ledger=self.ledger,
            window=window,
            interval=1.0,
            retrier=self.retrier,
            clock=self.clock,
        )
        self.settler = Settler(
            self.sink,
            self.dead_letters,
            self.checkpoints,
            signer=Keeper("test-host", NO_STATE, None, lambda _checkpoint: None),
            retrier=self.retrier,
            metrics=self.metrics,
            events_target=EVENTS,
            changes_target=CHANGES,
        )

    def _sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        if self.interrupt_after is not None and self.clock.now >= self.interrupt_after:
            self.interrupt.set()

    @property
    def acked(self) -> int:
        entry = self.store.get(KEY)
        return 0 if entry is None else entry.acked


def line(n: int, *, generation: int = 1, start: int | None = None, size: int = 10) -> Line:
    offset = n * size if start is None else start
    return Line(KEY, PATH, offset, offset + size, b'{"n":%d}' % n, generation=generation)


def event(n: int, changes: int = 0, **kw: int) -> Item:
    parcel = Parcel.of(f"ev-{n}", {"n": n}, [(f"ev-{n}-c{c}", {"c": c}) for c in range(changes)])
    return Item(line(n, **kw), parcel, PLACE)


def skipped(n: int) -> Item:
    return Item(line(n), Skipped("empty line"), PLACE)


def rejected(n: int, stage: Stage = Stage.NORMALIZE) -> Item:
    return Item(line(n), Rejected("field 'created': not a date", "created", stage), PLACE)


def by_event(outcomes: dict[str, ItemOutcome]) -> Answer:
    return lambda shipment: outcomes.get(shipment.event_id, Delivered())


def settle(rig: Rig, entries: Sequence[Entry]) -> None:
    rig.settler.settle(entries)


class TestSettler:
    def test_every_line_settles_and_the_checkpoint_moves_past_all(self) -> None:
        """Delivered, skipped and rejected lines all settle; the checkpoint reaches the end."""
        rig = Rig()
        settle(rig, [Opened(KEY, PATH, 1, 0), event(0), skipped(1), rejected(2), event(3)])
        assert rig.acked == 40
        assert rig.checkpoints.finalizer.pending == 0
        counts = rig.metrics.snapshot()
        assert (counts.shipped, counts.skipped, counts.dead_lettered) == (2, 1, 1)

    def test_a_rejected_document_between_two_accepted_ones(self) -> None:
        """The refused event is dead-lettered with Elasticsearch's words; its neighbours are
        delivered; the checkpoint moves over all three."""
        rig = Rig(by_event({"ev-1": MAPPING}))
        settle(rig, [event(0), event(1), event(2)])
        assert rig.acked == 30
        (letter,) = rig.dead_letters.letters
        assert (letter.stage, letter.event_id, letter.target) == (Stage.INDEX, "ev-1", EVENTS)
        assert (letter.line, letter.offset) == (b'{"n":1}', 10)
        assert letter.reason == "document_parsing_exception: failed to parse [user.id]"
        assert rig.metrics.snapshot().shipped == 2

    def test_partial_failure_leaves_the_checkpoint_before_the_unsettled_line(self) -> None:
        """An event still retrying when the sink gave up (interrupt) holds the checkpoint back;
        the lines after it settle but cannot move it past."""
        rig = Rig(by_event({"ev-1": Retry("503 unavailable", 503)}))
        settle(rig, [event(0), event(1), event(2)])
        assert rig.acked == 10
        assert rig.checkpoints.finalizer.pending == 1
        assert rig.checkpoints.finalizer.pending_for(KEY) == 1

    def test_a_refused_change_document_dead_letters_but_the_line_ships(self) -> None:
        """A refused change document is dead-lettered with its event's line; the line counts
        as shipped and the checkpoint moves."""
        rig = Rig()
        rig.sink.refused_changes["ev-0"] = [("ev-0-c1", MAPPING)]
        settle(rig, [event(0, changes=2)])
        (letter,) = rig.dead_letters.letters
        assert (letter.change_id, letter.target, letter.stage) == ("ev-0-c1", CHANGES, Stage.INDEX)
        assert rig.acked == 10
        counts = rig.metrics.snapshot()
        assert (counts.shipped, counts.changes_rejected, counts.dead_lettered) == (1, 1, 0)

    def test_stages_come_from_the_rejection(self) -> None:
        """Decode and normalize rejections keep the stage the normalizer set."""
        rig = Rig()
        settle(rig, [rejected(0, Stage.DECODE), rejected(1, Stage.NORMALIZE)])
        assert [d.stage for d in rig.dead_letters.letters] == [Stage.DECODE, Stage.NORMALIZE]

    def test_dead_letter_write_is_retried_then_settles(self) -> None:
        """A failing dead-letter write backs off on the clock (no real sleep) and is retried;
        only once it is durable do the lines settle."""
        rig = Rig(dead_letter_failures=2)
        settle(rig, [rejected(0), event(1)])
        assert rig.dead_letters.attempts == 3
        assert sum(rig.clock.slept) == 1.0 + 2.0
        assert rig.acked == 20

    def test_interrupt_during_retry_settles_nothing_not_durable(self) -> None:
        """When the grace runs out while a dead-letter write keeps failing, the rejected line
        stays unsettled (read again next start) and holds the checkpoint before it."""
        rig = Rig(dead_letter_failures=1000, interrupt_after=5.0)
        settle(rig, [event(0), rejected(1), event(2)])
        assert rig.interrupt.is_set()
        assert rig.dead_letters.letters == []
        assert rig.acked == 10
        assert rig.checkpoints.finalizer.pending == 1

    def test_interrupt_during_index_dead_letters_settles_none_of_the_batch(self) -> None:
        """Refused by Elasticsearch but not yet durable in the dead-letter file when
        interrupted: no event of that request settles."""
        rig = Rig(by_event({"ev-1": MAPPING}), dead_letter_failures=1000, interrupt_after=3.0)
        settle(rig, [event(0), event(1), event(2)])
        assert rig.acked == 0
        assert rig.checkpoints.finalizer.pending == 3

    def test_the_window_is_on_disk_before_the_request(self) -> None:
        """mark_sent is written before the sink sees the batch."""
        rig = Rig()
        settle(rig, [event(0), event(1)])
        assert rig.sink.saved_before == [{KEY: (0, 20)}]

    def test_a_replay_window_hit_is_verified_and_counted_duplicate(self) -> None:
        """Lines inside the previous run's window [acked, sent) ask for the replay check;
        lines past it do not."""
        window = ReplayWindow([(KEY.content_id, str(KEY), 0, 20)])
        rig = Rig(lambda s: Duplicate() if s.verify else Delivered(), window=window)
        settle(rig, [event(0), event(1), event(2)])
        assert [s.verify for s in rig.sink.shipped] == [True, True, False]
        counts = rig.metrics.snapshot()
        assert (counts.duplicates, counts.shipped) == (2, 1)
        assert rig.acked == 30

    def test_an_id_taken_by_another_line_is_a_gap(self) -> None:
        """A 409 for an id this agent never sent (the same record twice in a file, one file
        tailed by two pods) leaves the line's chain position empty: declared as a gap. A
        replay found by the check does not."""
        window = ReplayWindow([(KEY.content_id, str(KEY), 0, 10)])

        def answer(shipment: Shipment[Claim]) -> ItemOutcome:
            if shipment.verify:
                return Duplicate()
            return Duplicate(replay=False) if shipment.event_id == "ev-2" else Delivered()

        def chained(n: int) -> Item:
            place = Place(Head("test-stream", n + 1, f"{n + 1:064x}", f"ev-{n}"), f"{n:064x}")
            return Item(line(n), event(n).outcome, place)

        rig = Rig(answer, window=window)
        settle(rig, [chained(0), chained(1), chained(2)])
        assert rig.acked == 30
        _head, gaps = rig.ledger.settle(str(KEY), 30)
        assert [(g.seq, g.event_id, g.reason) for g in gaps] == [(3, "ev-2", TAKEN)]

    def test_the_ticket_travels_with_the_shipment(self) -> None:
        """Each shipment carries its line and ticket; the reader's parcel is not changed."""
        rig = Rig()
        items = [event(0), event(1)]
        settle(rig, items)
        claims = [s.tag for s in rig.sink.shipped]
        assert [c.line for c in claims] == [i.line for i in items]
        assert all(c.ticket.done for c in claims)
        assert [s.parcel for s in rig.sink.shipped] == [i.outcome for i in items]

    def test_a_reset_mid_batch_drops_the_older_generation(self) -> None:
        """Lines read before a truncation settle, but the checkpoint counts from the new
        start: after the reset only the new generation moves it."""
        rig = Rig()
        settle(rig, [Opened(KEY, PATH, 1, 0), event(0), event(1)])
        assert rig.acked == 20
        settle(
            rig,
            [
                event(2),  # read before the truncation
                Reset(KEY, PATH, 2),
                event(5, generation=1),  # a line the tailer carried over from before it
                event(8, generation=2, start=0, size=6),
            ],
        )
        assert rig.acked == 6
        assert rig.checkpoints.finalizer.pending == 0
        assert rig.metrics.snapshot().shipped == 5

    def test_a_reset_while_an_older_line_is_retrying(self) -> None:
        """An older line still pending when the reset arrives can never move the checkpoint
        later, even once it settles."""
        retrying = {"ev-1"}
        rig = Rig(lambda s: Retry("503", 503) if s.event_id in retrying else Delivered())
        settle(rig, [Opened(KEY, PATH, 1, 0), event(0), event(1)])
        assert rig.acked == 10
        settle(rig, [Reset(KEY, PATH, 2), event(3, generation=2, start=0, size=4)])
        assert rig.acked == 4
        retrying.clear()
        stale = next(s.tag.ticket for s in rig.sink.shipped if s.event_id == "ev-1")
        rig.checkpoints.settle([stale])
        assert rig.acked == 4
