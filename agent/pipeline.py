"""Files to Elasticsearch, every line settled exactly once, in order: the wiring.

Two threads and one bounded buffer between them (Vector's shape, with threads because the
Elasticsearch client is synchronous):

- the **reader** (:mod:`agent.reader`) takes lines and facts from the tailer, normalizes and
  encodes the lines, and fills the buffer; a full buffer pauses reading;
- the **settler** (:mod:`agent.settler`), on the sender thread, cuts batches, applies the
  facts and settles every line through the sink, the dead-letter file and the checkpointer,
  which is the registry's only writer.

:func:`wire` builds both from the settings and :class:`Pipeline` runs them. The pipeline owns
what it starts and stops: the two threads, the buffer between them and the interrupt that
ends every retry. Shutdown goes in order: stop reading, close the buffer, drain what was read
within ``shutdown_grace``, interrupt what is left, write the final checkpoint and sign it.
Lines not settled by then are simply read again at the next start (the replay window makes
that safe).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from elasticsearch import ApiError, Elasticsearch, TransportError

from agent.acks import Checkpointer, ReplayWindow
from agent.batch import BatchLimits, BoundedBuffer
from agent.build import build
from agent.config import Settings
from agent.deadletter import DeadLetterFile
from agent.evidence.keeper import Keeper
from agent.evidence.keyfile import KeyFileWatch
from agent.files import Registry, Tailer
from agent.files.discover import own_output_files
from agent.items import Entry
from agent.metrics import Health, Metrics
from agent.normalize import NormalizeOptions, Normalizer
from agent.reader import Reader
from agent.settler import Settler
from common.log import get_logger
from common.retry import Retrier, RetryPolicy
from indexer.access import AccessReport
from indexer.chain_index import write_checkpoint
from indexer.cluster import ClusterRefusal
from indexer.sink import BulkSink, RunIds, Transport

log = get_logger(__name__)

REGISTRY_WRITE_INTERVAL = 1.0  # seconds between registry writes after acknowledgements


def wire(
    settings: Settings,
    es: Elasticsearch,
    *,
    once: bool = False,
    setup: Callable[[], object] | None = None,
    metrics: Metrics | None = None,
    health: Health | None = None,
    policy: RetryPolicy | None = None,
    access: AccessReport | None = None,
    transport: Transport | None = None,
) -> Pipeline:
    """Build the reader and the settler from the settings, sharing one buffer, and the
    interrupt the pipeline sets; raises ``RegistryError`` for an unreadable registry.
    ``transport`` stands for ``es`` in the bulk sink (tests run the whole pipeline on it)."""
    metrics = metrics if metrics is not None else Metrics()
    health = health if health is not None else Health()
    registry = Registry(settings.state_dir, fingerprint_bytes=settings.fingerprint_bytes)
    tailer = _tailer(settings, registry)
    buffer: BoundedBuffer[Entry] = BoundedBuffer(
        settings.buffer_max_events, settings.buffer_max_bytes
    )
    metrics.track_buffer(buffer)
    interrupt = threading.Event()
    retrier = Retrier(policy, interrupt, heartbeat=lambda: health.beat("sender"))
    keeper = _keeper(settings, es)
    reader = Reader(
        tailer,
        Normalizer(NormalizeOptions.from_settings(settings)),
        buffer,
        chains=keeper.chains,
        host_name=settings.host_name,
        line_max=settings.line_max_bytes,
        metrics=metrics,
        health=health,
        once=once,
    )
    dead_letters = DeadLetterFile(settings.dead_letter_dir)
    run_id = secrets.token_hex(8)
    window_extended = registry.window_extended()  # before this run extends any window
    earlier = registry.begin_run(run_id)  # on disk before this run's first request
    sink = BulkSink(
        es,
        settings.events_target,
        settings.changes_target,
        retrier=retrier,
        observer=metrics,
        access=access,
        transport=transport,
        run=RunIds(run_id, tuple(earlier), window_extended),
    )
    settler = Settler(
        sink,
        dead_letters,
        _checkpointer(registry, keeper, retrier),
        signer=keeper,
        retrier=retrier,
        metrics=metrics,
        events_target=settings.events_target,
        changes_target=settings.changes_target,
    )
    limits = BatchLimits(
        settings.batch_max_events, settings.batch_max_bytes, settings.batch_max_wait
    )
    return Pipeline(
        reader,
        settler,
        buffer,
        dead_letters,
        limits,
        interrupt=interrupt,
        retrier=retrier,
        metrics=metrics,
        health=health,
        registry=registry,
        setup=setup,
        setup_target=",".join(settings.es_url),
        shutdown_grace=settings.shutdown_grace,
    )


def _checkpointer(registry: Registry, keeper: Keeper, retrier: Retrier) -> Checkpointer:
    """The registry's one writer: each acknowledged offset with its chain head (one atomic
    write, through the keeper's store and ledger) and the replay window the registry left."""
    store = keeper.wrap(registry)  # upgrades a previous version's chain state first
    window = ReplayWindow((p.content_id, p.key, p.acked, p.sent) for p in registry.positions())
    return Checkpointer(
        store,
        ledger=keeper.ledger,
        window=window,
        interval=REGISTRY_WRITE_INTERVAL,
        retrier=retrier,
    )


def own_paths(settings: Settings) -> list[str | Path]:
    """What the agent writes itself and never reads: state, dead letters, its own output."""
    return [settings.state_dir, settings.dead_letter_dir, *own_output_files()]


def _tailer(settings: Settings, registry: Registry) -> Tailer:
    """The tailer over the configured paths; it reads ``registry`` and never writes it."""
    return Tailer(
        settings.paths,
        registry,
        fingerprint_bytes=settings.fingerprint_bytes,
        rescan_interval=settings.rescan_interval,
        close_inactive=settings.close_inactive,
        exclude=own_paths(settings),
        line_max=settings.line_max_bytes,
    )


def _keeper(settings: Settings, es: Elasticsearch) -> Keeper:
    """The hash chains' keeper, signing checkpoints when a key file is configured and
    following that file, so a rotated key is used without a restart."""
    key, watch = (
        KeyFileWatch.open(settings.chain_key_file) if settings.chain_key_file else (None, None)
    )
    return Keeper(
        settings.host_name,
        settings.state_dir,
        key,
        lambda checkpoint: write_checkpoint(
            es.options(request_timeout=10, max_retries=0), settings.checkpoints_target, checkpoint
        ),
        interval=settings.chain_checkpoint_interval,
        rotation=watch.changed if watch is not None else None,
    )


class Pipeline:
    """Runs the reader and the settler on their threads; stops them in order."""

    def __init__(
        self,
        reader: Reader,
        settler: Settler,
        buffer: BoundedBuffer[Entry],
        dead_letters: DeadLetterFile,
        limits: BatchLimits,
        *,
        interrupt: threading.Event,
        retrier: Retrier,
        metrics: Metrics,
        health: Health,
        registry: Registry,
        setup: Callable[[], object] | None = None,
        setup_target: str = "",
        shutdown_grace: float = 10.0,
    ) -> None:
        self.reader = reader
        self.settler = settler
        self.buffer = buffer
        self.dead_letters = dead_letters
        self.limits = limits
        # Set when the grace ran out or a loop failed: every retry stops, unsettled lines are
        # abandoned (read again at the next start).
        self.interrupt = interrupt
        self._retrier = retrier  # the settler's, on the same interrupt: setup is retried first
        self.metrics = metrics
        self.health = health
        self.registry = registry  # read by the command line after the run (lines left)
        self._setup = setup
        self._setup_target = setup_target
        self.shutdown_grace = shutdown_grace
        self.failure: BaseException | None = None
        # Set once both loops have returned; ``start(wake=...)`` sets that event too.
        self.finished = threading.Event()
        self._wake: threading.Event | None = None
        self._loops_left = 2
        self._loops_lock = threading.Lock()
        self._reader = threading.Thread(target=self._guarded(reader.run), name="reader")
        self._sender = threading.Thread(target=self._guarded(self._send), name="sender")

    @property
    def behind(self) -> int:
        """Bytes not yet read, over all files."""
        return self.reader.behind

    @property
    def running(self) -> bool:
        return self._reader.is_alive() or self._sender.is_alive()

    def start(self, *, wake: threading.Event | None = None) -> None:
        """Start both loops; ``wake`` is set when they have both returned (a caller waiting
        on it and on signals notices the end at once, not at its next poll)."""
        self._wake = wake
        # Which build runs, said once: the figures in docs/performance.md depend on it.
        log.info("per_line_path", build=build())
        log.info(
            "pipeline_started",
            paths=self.reader.patterns,
            once=self.reader.once,
            replay_window=self.settler.replaying,
            events_target=self.settler.events_target,
        )
        self.reader.start()
        self._reader.start()
        self._sender.start()

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
        grace = self.shutdown_grace if grace is None else grace
        deadline = time.monotonic() + grace
        log.info("shutdown_started", grace=grace, in_flight=self._in_flight())
        self.reader.stop()
        self._reader.join(max(0.0, deadline - time.monotonic()))
        self.buffer.close()
        self._sender.join(max(0.0, deadline - time.monotonic()))
        if self._sender.is_alive():
            self.interrupt.set()  # stop retrying; a request in flight may still finish
            self._sender.join(2.0)
        self.close()
        # Drained means nothing read is left unsettled, not merely that the sender stopped
        # (a second signal stops it early, with lines still in flight).
        unsettled = self._in_flight()
        drained = not self._sender.is_alive() and unsettled == 0
        log.info(
            "shutdown_finished",
            drained=drained,
            unsettled=unsettled,
            **self.metrics.snapshot().as_dict(),
        )
        return drained

    def close(self) -> None:
        """Release the files, write the final checkpoint and sign it (idempotent)."""
        self.reader.close()
        self.settler.close()
        self.dead_letters.close()

    def summary(self) -> dict[str, int]:
        partial = self.reader.partial
        return {
            **self.metrics.snapshot().as_dict(),
            "dead_letter_records": self.dead_letters.written,
            "in_flight": self._in_flight(),
            "partial_lines": len(partial),
            "partial_bytes": sum(partial.values()),
        }

    def _send(self) -> None:
        """The sender thread: setup first (retried while Elasticsearch is away), then settle."""
        try:
            if self._setup is not None:
                self._retrier.call(
                    self._setup,
                    retry_on=(ApiError, TransportError),
                    event="setup_failed",
                    es_url=self._setup_target,
                )
            self.health.setup_done()
            self.settler.run(self.buffer, self.limits, heartbeat=self._beat)
        finally:
            self.health.finished("sender")

    def _beat(self) -> None:
        self.health.beat("sender")

    def _in_flight(self) -> int:
        return self.settler.pending + self.buffer.events

    def _halt(self) -> None:
        """Everything stops at once: reading, buffering, retrying (a loop failed)."""
        self.reader.stop()
        self.buffer.close()
        self.interrupt.set()

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:
                self.failure = exc
                if isinstance(exc, ClusterRefusal):  # the node said no for good: one line
                    log.error("elasticsearch_refused", reason=str(exc))
                else:
                    log.exception("pipeline_loop_failed", loop=threading.current_thread().name)
                self._halt()
            finally:
                self._loop_returned()

        return run

    def _loop_returned(self) -> None:
        with self._loops_lock:
            self._loops_left -= 1
            if self._loops_left:
                return
        self.finished.set()
        if self._wake is not None:
            self._wake.set()
