"""The run loop: files to Elasticsearch, every line settled exactly once, in order.

Two threads and one bounded buffer between them (Vector's shape, with threads because the
Elasticsearch client is synchronous):

- the **reader** takes complete lines from the tailer, normalizes them (pure and fast, so it
  stays on this thread), encodes the documents to bytes and puts them in the buffer. When
  the buffer is full (events *or* bytes) ``put`` blocks: reading pauses and the file on disk
  holds the backlog, so memory stays flat however far behind Elasticsearch is;
- the **sender** cuts batches (count, bytes, time), registers every line with the ordered
  finalizer, settles skipped lines at once, writes rejected ones to the dead-letter file
  (fsync, then ack), records the replay window (``mark_sent`` + save) *before* each bulk
  request, ships, and moves checkpoints over the contiguous settled prefix of each file.

Shutdown goes in order: stop reading, drain what was read within ``shutdown_grace``, write
the final checkpoint. Lines not settled by then are simply read again at the next start
(the replay window makes that safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from elasticsearch import ApiError, Elasticsearch, TransportError

from agent.acks import Checkpointer, OrderedFinalizer, Ticket
from agent.batch import Batch, Batcher, BatchLimits, BoundedBuffer
from agent.config import Settings
from agent.deadletter import DeadLetter, DeadLetterFile
from agent.files import FileKey, Line, Registry, Tailer
from agent.metrics import Health, Metrics
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Rejected, Skipped, Source
from common.log import get_logger
from common.retry import Retrier, RetryPolicy
from common.stage import Stage
from indexer import sink as bulk
from indexer.dedup import ReplayWindow

log = get_logger("agent.pipeline")

READ_MAX_LINES = 1000
READ_MAX_BYTES = 1 << 20
CHECKPOINT_INTERVAL = 1.0  # seconds between checkpoint writes after acknowledgements
GAUGE_INTERVAL = 2.0
FORGET_INTERVAL = 600.0  # how often registry entries of long-gone files are looked at
FORGET_AFTER = 86_400.0  # a file gone from disk and untouched this long is forgotten
_ITEM_OVERHEAD = 512  # bytes of Python objects per buffered line beyond its data (measured)


@dataclass(frozen=True, slots=True)
class Claim:
    """What travels with a shipment: its line, and the ticket that settles it."""

    line: Line
    ticket: Ticket[FileKey]


@dataclass(frozen=True, slots=True)
class Item:
    """A line and what it became; events are encoded (bytes are compact, dicts are not)."""

    line: Line
    outcome: bulk.Parcel | Skipped | Rejected


def over_long(line: Line, line_max: int) -> Rejected:
    """A line longer than ``LINE_MAX_BYTES``: dead-lettered with its length and first bytes."""
    return Rejected(
        f"line of {line.oversized} bytes is longer than LINE_MAX_BYTES ({line_max}); "
        f"the dead letter keeps its first {len(line.data)} bytes",
        stage=Stage.DECODE,
    )


class Pipeline:
    """Tail, normalize, batch, ship, acknowledge; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        es: Elasticsearch,
        *,
        once: bool = False,
        setup: Callable[[], object] | None = None,
        metrics: Metrics | None = None,
        health: Health | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.once = once
        self.metrics = metrics if metrics is not None else Metrics()
        self.health = health if health is not None else Health()
        self.policy = policy if policy is not None else RetryPolicy()
        self._setup = setup
        self.registry = Registry(settings.state_dir, fingerprint_bytes=settings.fingerprint_bytes)
        self.tailer = Tailer(
            settings.paths,
            self.registry,
            fingerprint_bytes=settings.fingerprint_bytes,
            rescan_interval=settings.rescan_interval,
            close_inactive=settings.close_inactive,
            exclude=(settings.state_dir, settings.dead_letter_dir),
            line_max=settings.line_max_bytes,
        )
        self.normalizer = Normalizer(NormalizeOptions.from_settings(settings))
        self.buffer: BoundedBuffer[Item] = BoundedBuffer(
            settings.buffer_max_events, settings.buffer_max_bytes
        )
        self.limits = BatchLimits(
            settings.batch_max_events, settings.batch_max_bytes, settings.batch_max_wait
        )
        self.metrics.track_buffer(self.buffer)
        self.dead_letters = DeadLetterFile(settings.dead_letter_dir)
        positions = self.registry.positions()
        self.window = ReplayWindow((p.key, p.acked, p.sent) for p in positions)
        self.interrupt = threading.Event()  # the grace ran out: stop retrying, abandon
        self.retrier = Retrier(
            self.policy, self.interrupt, heartbeat=lambda: self.health.beat("sender")
        )
        self.finalizer: OrderedFinalizer[FileKey] = OrderedFinalizer()
        self.checkpoints = Checkpointer(
            self.registry, self.finalizer, interval=CHECKPOINT_INTERVAL, retrier=self.retrier
        )
        self.sink = bulk.BulkSink(
            es,
            settings.events_target,
            settings.changes_target,
            retrier=self.retrier,
            observer=self.metrics,
        )
        self._stop_reading = threading.Event()
        self._reader = threading.Thread(target=self._guarded(self._read_loop), name="reader")
        self._sender = threading.Thread(target=self._guarded(self._send_loop), name="sender")
        self.failure: BaseException | None = None
        self.behind = 0  # bytes not yet read, over all files (the reader updates it)
        self.partial: dict[str, int] = {}  # per path, bytes of an unfinished last line

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        log.info(
            "pipeline_started",
            paths=list(self.tailer.patterns),
            once=self.once,
            replay_window=bool(self.window),
            events_target=self.settings.events_target,
        )
        self.tailer.start()
        self._reader.start()
        self._sender.start()

    @property
    def running(self) -> bool:
        return self._reader.is_alive() or self._sender.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the pipeline to finish by itself (``--once``); True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._reader, self._sender):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not self.running

    def stop(self, grace: float | None = None) -> bool:
        """Stop reading, drain within ``grace`` seconds, save the checkpoint.

        Returns True when everything read was settled before the deadline.
        """
        grace = self.settings.shutdown_grace if grace is None else grace
        deadline = time.monotonic() + grace
        log.info("shutdown_started", grace=grace, in_flight=self.finalizer.pending)
        self._stop_reading.set()
        self._reader.join(max(0.0, deadline - time.monotonic()))
        self.buffer.close()
        self._sender.join(max(0.0, deadline - time.monotonic()))
        if self._sender.is_alive():
            self.interrupt.set()  # stop retrying; a request in flight may still finish
            self._sender.join(2.0)
        self.close()
        # Drained means nothing read is left unsettled, not merely that the sender stopped
        # (a second signal stops it early, with lines still in flight).
        unsettled = self.finalizer.pending + self.buffer.events
        drained = not self._sender.is_alive() and unsettled == 0
        log.info(
            "shutdown_finished",
            drained=drained,
            unsettled=unsettled,
            **self.metrics.snapshot().as_dict(),
        )
        return drained

    def close(self) -> None:
        """Write the final checkpoint and release files (idempotent)."""
        self.tailer.stop()
        self.checkpoints.save(force=True)
        self.dead_letters.close()

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                self.failure = exc
                log.exception("pipeline_loop_failed", loop=threading.current_thread().name)
                self._stop_reading.set()
                self.buffer.close()
                self.interrupt.set()

        return run

    # ------------------------------------------------------------------ reader thread

    def _read_loop(self) -> None:
        last_gauges = 0.0
        try:
            while not self._stop_reading.is_set():
                self.health.beat("reader")
                now = time.monotonic()
                if now - last_gauges >= GAUGE_INTERVAL:
                    last_gauges = now
                    self._observe_files()
                lines = self.tailer.read(READ_MAX_LINES, READ_MAX_BYTES)
                if not lines:
                    if self.once and self.tailer.idle():
                        break
                    self.tailer.wait(0.5)
                    continue
                for line in lines:  # stopping leaves the rest to be read again next time
                    if self._stop_reading.is_set() or not self._put(self._prepare(line)):
                        return
                    self.metrics.read()
        finally:
            self._observe_files()
            self.partial = self.tailer.pending_partial()
            self.health.finished("reader")
            self.buffer.close()

    def _observe_files(self) -> None:
        lag = self.tailer.lag()
        self.behind = sum(lag.values())
        self.metrics.set_lag(lag)

    def _prepare(self, line: Line) -> Item:
        if line.oversized:
            return Item(line, over_long(line, self.settings.line_max_bytes))
        source = Source(line.path, line.key.content_id, line.offset, self.settings.host_name)
        outcome = self.normalizer(line.data, source)
        if not isinstance(outcome, Normalized):
            return Item(line, outcome)
        try:
            parcel = bulk.Parcel.of(outcome.event_id, outcome.event, outcome.changes)
        except (TypeError, orjson.JSONEncodeError) as exc:
            return Item(line, Rejected(f"cannot encode the document: {exc}"))
        return Item(line, parcel)

    def _put(self, item: Item) -> bool:
        """Buffer one item, waiting while full (backpressure); False when stopping."""
        size = len(item.line.data) + _ITEM_OVERHEAD
        if isinstance(item.outcome, bulk.Parcel):
            size += len(item.outcome)
        while not self.buffer.put(item, size, timeout=0.5):
            self.health.beat("reader")
            if self._stop_reading.is_set() or self.buffer.closed:
                return False
        return True

    # ------------------------------------------------------------------ sender thread

    def _send_loop(self) -> None:
        try:
            self._run_setup()
            batcher: Batcher[Item] = Batcher(self.limits)
            forgotten_at = float("-inf")
            while not self.interrupt.is_set():
                self.health.beat("sender")
                deadline = batcher.deadline()
                wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
                taken = self.buffer.get(batcher.room(), timeout=wait)
                for item, size in taken:
                    batch = batcher.add(item, size)
                    if batch is not None:
                        self._process(batch)
                if not taken and self.buffer.closed:
                    final = batcher.flush("drain")
                    if final is not None:
                        self._process(final)
                    break
                due = batcher.poll()
                if due is not None:
                    self._process(due)
                self.checkpoints.save()  # throttled: at most every CHECKPOINT_INTERVAL
                if time.monotonic() - forgotten_at >= FORGET_INTERVAL:
                    forgotten_at = time.monotonic()
                    self.registry.forget(older_than=FORGET_AFTER)
        finally:
            self.health.finished("sender")

    def _run_setup(self) -> None:
        """Install templates before the first write; retry while Elasticsearch is away."""
        if self._setup is not None:
            self.retrier.call(
                self._setup,
                retry_on=(ApiError, TransportError),
                event="setup_failed",
                es_url=",".join(self.settings.es_url),
            )
        self.health.setup_done()

    def _process(self, batch: Batch[Item]) -> None:
        """Settle one batch: skips and rejections locally, events through the sink."""
        started = time.perf_counter()
        settled: list[Ticket[FileKey]] = []
        letters: list[tuple[Ticket[FileKey], DeadLetter]] = []
        shipments: list[bulk.Shipment[Claim]] = []
        for item in batch.items:
            line, outcome = item.line, item.outcome
            ticket = self.finalizer.register(line.key, line.path, line.offset, line.end)
            if isinstance(outcome, Skipped):
                settled.append(ticket)
            elif isinstance(outcome, Rejected):
                letters.append((ticket, DeadLetter.rejected(line, outcome)))
            else:
                verify = bool(self.window) and self.window.covers(str(line.key), line.offset)
                shipments.append(bulk.Shipment(Claim(line, ticket), outcome, verify))
        self.metrics.skip(len(settled))
        records = [letter for _, letter in letters]
        if records and self._write_dead_letters(records):
            for letter in records:
                self.metrics.dead_letter(str(letter.stage))
            settled.extend(ticket for ticket, _ in letters)
        self.checkpoints.settle(settled)
        if shipments and self._mark_sent(shipments):
            self.checkpoints.settle(self._ship(shipments))
        log.debug(
            "batch_processed",
            lines=len(batch),
            events=len(shipments),
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

    def _mark_sent(self, shipments: list[bulk.Shipment[Claim]]) -> bool:
        """Record the replay window durably before the request can reach the index."""
        ends: dict[FileKey, tuple[str, int]] = {}
        for line in (shipment.tag.line for shipment in shipments):
            ends[line.key] = (line.path, max(line.end, ends.get(line.key, ("", 0))[1]))
        for key, (_path, end) in ends.items():
            self.window.note_sent(str(key), end)
        return self.checkpoints.mark_sent(ends)

    def _ship(self, shipments: list[bulk.Shipment[Claim]]) -> list[Ticket[FileKey]]:
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
            if isinstance(result.outcome, bulk.Refused):
                letters.append(DeadLetter.refused(
                    claim.line, result.outcome, event_id=event_id,
                    target=self.settings.events_target,
                ))  # fmt: skip
            for change_id, why in result.rejected_changes:
                letters.append(DeadLetter.refused(
                    claim.line, why, event_id=event_id, change_id=change_id,
                    target=self.settings.changes_target,
                ))  # fmt: skip
            refused += isinstance(result.outcome, bulk.Refused)
            duplicates += isinstance(result.outcome, bulk.Duplicate)
            shipped += isinstance(result.outcome, bulk.Delivered)
            changes += result.changes_delivered
            done.append(claim.ticket)
        if letters and not self._write_dead_letters(letters):
            return []  # interrupted before the letters were durable: settle nothing
        self.metrics.shipped(shipped, changes)
        self.metrics.duplicate(duplicates)
        self.metrics.dead_letter(str(Stage.INDEX), refused)
        self.metrics.change_rejected(len(letters) - refused)
        return done

    # ------------------------------------------------------------------ reporting

    def summary(self) -> dict[str, Any]:
        counts = self.metrics.snapshot()
        return {
            **counts.as_dict(),
            "dead_letter_records": self.dead_letters.written,
            "in_flight": self.finalizer.pending + self.buffer.events,
            "partial_lines": len(self.partial),
            "partial_bytes": sum(self.partial.values()),
        }
