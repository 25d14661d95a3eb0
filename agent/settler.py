"""The settler: every buffered line gets its one fate, and checkpoints follow, in order.

It takes what the reader buffered, in batches (count, bytes, time), and for each batch:

1. applies the tailer's facts and registers every line with the checkpointer, in stream
   order, so each fact lands exactly between the lines it came between;
2. settles skipped lines at once, and rejected ones once their dead letters are durable;
3. has the checkpointer record the replay window (``mark_sent``, written to disk) *before*
   the bulk request;
4. ships the events; each shipment carries its :class:`Claim` (the line and the ticket that
   settles it), so an answer finds its line without any lookup;
5. dead-letters what Elasticsearch refused, then settles every event whose fate is final.

Its collaborators are injected as protocols (the sink, the dead-letter file, the
checkpoints, the signer, the counters) with the one retry loop, so it is tested with fakes
and a fake clock, without threads or a node. Every side effect of an acknowledgement (the
registry, the chain places and gaps, the replay window) goes through the checkpoints
(``agent.acks.Checkpointer``). It is used from one thread only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from agent.acks import Ticket
from agent.batch import Batch, Batcher, BatchLimits, BoundedBuffer
from agent.deadletter import DeadLetter
from agent.evidence.chains import Place
from agent.files import FileKey, Line
from agent.files.facts import Fact
from agent.items import Entry, Item
from agent.normalize import Rejected, Skipped
from common.log import get_logger
from common.retry import Retrier
from common.stage import Stage
from indexer.outcomes import Delivered, Duplicate, Refused
from indexer.sink import EventResult, Shipment

# The gap reason of an event whose id another line or agent had already stored.
TAKEN = "duplicate: an event with this id is already in the index (stored by another line)"

log = get_logger(__name__)

FORGET_INTERVAL = 600.0  # how often registry entries of long-gone files are looked at
FORGET_AFTER = 86_400.0  # a file gone from disk and untouched this long is forgotten


class Claim:
    """What travels with a shipment: its line, and the ticket that settles it.

    A plain class: one is made per event, and a compiled plain class is built natively,
    where a frozen dataclass runs its generated ``__init__`` through ``object.__setattr__``.
    """

    def __init__(self, line: Line, ticket: Ticket[FileKey]) -> None:
        self.line = line
        self.ticket = ticket


class _Sorted:
    """A batch's lines sorted by what settles them: at once, a dead letter, or a shipment."""

    def __init__(self) -> None:
        self.settled: list[Ticket[FileKey]] = []
        self.letters: list[tuple[Ticket[FileKey], DeadLetter]] = []
        self.shipments: list[Shipment[Claim]] = []


class Sink(Protocol):
    """Delivers shipments, one result per shipment in order (``indexer.sink.BulkSink``)."""

    def ship(self, shipments: Sequence[Shipment[Claim]]) -> list[EventResult[Claim]]: ...


class DeadLetters(Protocol):
    """Appends dead letters durably or raises ``OSError`` (``agent.deadletter``)."""

    def write(self, letters: Sequence[DeadLetter]) -> None: ...


class Checkpoints(Protocol):
    """Where every acknowledgement goes (``agent.acks.Checkpointer``)."""

    @property
    def pending(self) -> int: ...

    @property
    def replaying(self) -> bool: ...

    def apply(self, fact: Fact) -> None: ...

    def register_run(
        self,
        key: FileKey,
        generation: int,
        path: str,
        spans: Sequence[tuple[int, int]],
        places: Sequence[Place | None],
    ) -> list[Ticket[FileKey]]: ...

    def refused(self, key: FileKey, end: int, reason: str) -> None: ...

    def replay_limit(self, key: FileKey) -> int: ...

    def settle(self, tickets: Iterable[Ticket[FileKey]]) -> None: ...

    def mark_sent(self, ends: Mapping[FileKey, tuple[str, int]]) -> bool: ...

    def save(self, *, force: bool = False, required: bool = False) -> bool: ...

    def forget(self, older_than: float) -> int: ...


class Signing(Protocol):
    """Signs the persisted chain heads when due (``agent.evidence.keeper.Keeper``)."""

    def sign(self, *, force: bool = False) -> None: ...


class Counters(Protocol):
    """What the settler counts (``agent.metrics.Metrics``)."""

    def skip(self, n: int = 1) -> None: ...

    def dead_letter(self, stage: str, n: int = 1) -> None: ...

    def shipped(self, events: int, changes: int = 0) -> None: ...

    def duplicate(self, n: int = 1) -> None: ...

    def change_rejected(self, n: int = 1) -> None: ...


class Settler:
    """Settles batches of buffered lines; see the module docstring."""

    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetters,
        checkpoints: Checkpoints,
        *,
        signer: Signing,
        retrier: Retrier,
        metrics: Counters,
        events_target: str,
        changes_target: str,
        interrupt: threading.Event | None = None,
    ) -> None:
        self.sink = sink
        self.dead_letters = dead_letters
        self.checkpoints = checkpoints
        self.signer = signer  # signed checkpoints of the chain heads the checkpoints persist
        self.retrier = retrier
        self.metrics = metrics
        self.events_target = events_target
        self.changes_target = changes_target
        # Set when the shutdown grace ran out (the pipeline's; the retry loop waits on it).
        self.interrupt = interrupt if interrupt is not None else retrier.interrupt

    @property
    def pending(self) -> int:
        """Lines registered and not yet settled."""
        return self.checkpoints.pending

    @property
    def replaying(self) -> bool:
        """Whether lines read may already be in the index (the replay window)."""
        return self.checkpoints.replaying

    def close(self) -> None:
        """Write the final checkpoint, then sign the heads just saved (idempotent)."""
        self.checkpoints.save(force=True)
        self.signer.sign(force=True)

    def settle(self, entries: Sequence[Entry]) -> int:
        """Settle one batch: facts and skips at once, rejections and events once durable.

        Returns how many events were in it (for the batch log).
        """
        batch = _Sorted()
        run: list[Item] = []
        for entry in entries:
            if isinstance(entry, Item):
                run.append(entry)
                continue
            self._sort(run, batch)  # the lines before a fact are registered before it applies
            run = []
            self.checkpoints.apply(entry)
        self._sort(run, batch)
        settled, letters, shipments = batch.settled, batch.letters, batch.shipments
        self.metrics.skip(len(settled))
        records = [letter for _, letter in letters]
        if records and self._write_dead_letters(records):
            for letter in records:
                self.metrics.dead_letter(str(letter.stage))
            settled.extend(ticket for ticket, _ in letters)
        self.checkpoints.settle(settled)
        if shipments and self._mark_sent(shipments):
            self.checkpoints.settle(self._ship(shipments))
        return len(shipments)

    def _sort(self, run: list[Item], batch: _Sorted) -> None:
        """Register a run of lines (no fact between them) and sort them by fate.

        Whether an event may already be in the index is one offset per file: asked once per
        file and run, and not at all when there is no replay window.
        """
        replaying = self.checkpoints.replaying
        limit_key: FileKey | None = None
        limit = 0
        for item, ticket in zip(run, self._register(run), strict=True):
            line, outcome = item.line, item.outcome
            if isinstance(outcome, Skipped):
                batch.settled.append(ticket)
            elif isinstance(outcome, Rejected):
                self.checkpoints.refused(line.key, line.end, outcome.reason)
                batch.letters.append((ticket, DeadLetter.rejected(line, outcome)))
            else:
                if replaying and line.key is not limit_key:
                    limit_key, limit = line.key, self.checkpoints.replay_limit(line.key)
                verify = replaying and line.offset < limit
                batch.shipments.append(Shipment(Claim(line, ticket), outcome, verify))

    def _register(self, run: list[Item]) -> list[Ticket[FileKey]]:
        """Register lines in stream order, one call per stretch of one file and generation."""
        tickets: list[Ticket[FileKey]] = []
        start, count = 0, len(run)
        while start < count:
            first = run[start].line
            stop = start + 1
            while stop < count and _same_stretch(first, run[stop].line):
                stop += 1
            stretch = run[start:stop]
            tickets.extend(self.checkpoints.register_run(
                first.key, first.generation, first.path,
                [(item.line.offset, item.line.end) for item in stretch],
                [item.chain for item in stretch],
            ))  # fmt: skip
            start = stop
        return tickets

    def run(
        self,
        buffer: BoundedBuffer[Entry],
        limits: BatchLimits,
        *,
        heartbeat: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """The sender loop: batches from the buffer until it is closed and drained, or until
        the interrupt (the shutdown grace ran out); periodic checkpoint writes in between."""
        batcher: Batcher[Entry] = Batcher(limits, clock)
        forgotten_at = float("-inf")
        while not self.interrupt.is_set():
            heartbeat()
            deadline = batcher.deadline()
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - clock()))
            taken = buffer.get(batcher.room(), timeout=wait)
            for entry, size in taken:
                self._settle_batch(batcher.add(entry, size))
            if not taken and buffer.closed:
                self._settle_batch(batcher.flush("drain"))
                break
            self._settle_batch(batcher.poll())
            self.checkpoints.save()  # throttled: at most every checkpoint interval
            self.signer.sign()  # when CHAIN_CHECKPOINT_INTERVAL has passed
            if clock() - forgotten_at >= FORGET_INTERVAL:
                forgotten_at = clock()
                self.checkpoints.forget(older_than=FORGET_AFTER)

    def _settle_batch(self, batch: Batch[Entry] | None) -> None:
        if batch is None:
            return
        started = time.perf_counter()
        events = self.settle(batch.items)
        log.debug(
            "batch_processed",
            lines=len(batch),
            events=events,
            bytes=batch.size,
            closed_by=batch.reason,
            seconds=round(time.perf_counter() - started, 4),
        )

    def _write_dead_letters(self, letters: list[DeadLetter]) -> bool:
        """Durable before acknowledged; retried until written, False only when interrupted."""
        return self.retrier.call(
            lambda: self.dead_letters.write(letters),
            retry_on=(OSError,),
            event="dead_letter_write_failed",
        )

    def _mark_sent(self, shipments: list[Shipment[Claim]]) -> bool:
        """Record the replay window durably before the request can reach the index."""
        ends: dict[FileKey, tuple[str, int]] = {}
        key: FileKey | None = None
        path, end = "", 0
        for shipment in shipments:  # a batch is a few stretches of one file each
            line = shipment.tag.line
            if line.key is not key:
                if key is not None:
                    _note_end(ends, key, path, end)
                key, end = line.key, line.end
            path, end = line.path, max(end, line.end)
        if key is not None:
            _note_end(ends, key, path, end)
        return self.checkpoints.mark_sent(ends)

    def _ship(self, shipments: list[Shipment[Claim]]) -> list[Ticket[FileKey]]:
        """Ship events; return the tickets of every event whose fate is now settled.

        An event refused by Elasticsearch is a dead-lettered line. A refused change document
        is dead-lettered with its event's line while the line itself counts as shipped.
        """
        done: list[Ticket[FileKey]] = []
        letters: list[DeadLetter] = []
        shipped = duplicates = changes = refused = 0
        for result in self.sink.ship(shipments):
            if not result.acknowledged:
                continue  # interrupted at shutdown: read again next time
            claim, event_id = result.shipment.tag, result.shipment.event_id
            if isinstance(result.outcome, Duplicate) and not result.outcome.replay:
                self.checkpoints.refused(claim.line.key, claim.line.end, TAKEN)
            if isinstance(result.outcome, Refused):
                reason = result.outcome.describe()
                self.checkpoints.refused(claim.line.key, claim.line.end, reason)
                letters.append(DeadLetter.refused(
                    claim.line, result.outcome, event_id=event_id, target=self.events_target,
                ))  # fmt: skip
            for change_id, why in result.rejected_changes:
                letters.append(DeadLetter.refused(
                    claim.line, why, event_id=event_id, change_id=change_id,
                    target=self.changes_target,
                ))  # fmt: skip
            refused += isinstance(result.outcome, Refused)
            duplicates += isinstance(result.outcome, Duplicate)
            shipped += isinstance(result.outcome, Delivered)
            changes += result.changes_delivered
            done.append(claim.ticket)
        if letters and not self._write_dead_letters(letters):
            return []  # interrupted before the letters were durable: settle nothing
        self.metrics.shipped(shipped, changes)
        self.metrics.duplicate(duplicates)
        self.metrics.dead_letter(str(Stage.INDEX), refused)
        self.metrics.change_rejected(len(letters) - refused)
        return done


def _same_stretch(first: Line, line: Line) -> bool:
    """Whether ``line`` registers along with ``first``: same file, generation and path."""
    same_key = line.key is first.key or line.key == first.key
    return same_key and line.generation == first.generation and line.path == first.path


def _note_end(ends: dict[FileKey, tuple[str, int]], key: FileKey, path: str, end: int) -> None:
    """The furthest end sent of ``key``, with the path its last line was read from."""
    before = ends.get(key)
    ends[key] = (path, end if before is None else max(end, before[1]))
