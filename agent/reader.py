"""The reader thread: lines from the tailer, normalized and encoded, into the bounded buffer.

Normalizing is pure and fast, so it stays on this thread, and so does encoding the documents
to bytes (bytes are what the buffer's byte bound should count). When the buffer is full
(events *or* bytes) ``put`` blocks: reading pauses and the file on disk holds the backlog,
so memory stays flat however far behind Elasticsearch is. The tailer's facts go into the
buffer in their place among the lines; nothing here touches the registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import orjson

from agent.batch import BoundedBuffer
from agent.evidence.chains import Chains
from agent.files import Line, Tailer
from agent.files.facts import Copied
from agent.items import Entry, Item
from agent.metrics import Health, Metrics
from agent.normalize import Normalized, Normalizer, Rejected, Source
from common.stage import Stage
from indexer.bulkbody import Parcel

READ_MAX_LINES = 1000
READ_MAX_BYTES = 1 << 20
GAUGE_INTERVAL = 2.0
ITEM_OVERHEAD = 512  # bytes of Python objects per buffered line beyond its data (measured)
FACT_SIZE = 256  # what a fact is counted as in the buffer's byte bound


class Reader:
    """Reads until stopped (or, with ``once``, until every file is read to its end)."""

    def __init__(
        self,
        tailer: Tailer,
        normalizer: Normalizer,
        buffer: BoundedBuffer[Entry],
        *,
        chains: Chains,
        host_name: str,
        line_max: int,
        metrics: Metrics,
        health: Health,
        once: bool = False,
    ) -> None:
        self.tailer = tailer
        self.buffer = buffer
        self.chains = chains
        self.prepare = Preparer(normalizer, chains, host_name=host_name, line_max=line_max)
        self.metrics = metrics
        self.health = health
        self.once = once
        self.stopping = threading.Event()
        self.behind = 0  # bytes not yet read, over all files
        self.partial: dict[str, int] = {}  # per path, bytes of an unfinished last line

    @property
    def patterns(self) -> list[str]:
        """The path patterns the tailer follows."""
        return list(self.tailer.patterns)

    def start(self) -> None:
        """Start watching the files (before :meth:`run` is started on its thread)."""
        self.tailer.start()

    def stop(self) -> None:
        """Ask the loop to end: it stops at its next look, or while waiting for room."""
        self.stopping.set()

    def close(self) -> None:
        """Stop watching and release the files (idempotent)."""
        self.tailer.stop()

    def run(self) -> None:
        """The loop; closes the buffer when it ends, so the settler drains and finishes."""
        last_gauges = 0.0
        try:
            while not self.stopping.is_set():
                self.health.beat("reader")
                now = time.monotonic()
                if now - last_gauges >= GAUGE_INTERVAL:
                    last_gauges = now
                    self._observe_files()
                entries = self.tailer.read(READ_MAX_LINES, READ_MAX_BYTES)
                if not entries:
                    if self.once and self.tailer.idle():
                        break
                    self.tailer.wait(0.5)
                    continue
                if not self._put_all(entries):  # what was not buffered is read again next time
                    return
        finally:
            self._observe_files()
            self.partial = self.tailer.pending_partial()
            self.health.finished("reader")
            self.buffer.close()

    def _sized(self, read: Line | Entry) -> tuple[Entry, int]:
        """A line prepared (or a fact as it is), with what it counts for in the byte bound."""
        if isinstance(read, Line):
            item = self.prepare(read)
            size = len(read.data) + ITEM_OVERHEAD
            if isinstance(item.outcome, Parcel):
                size += len(item.outcome)
            return item, size
        if isinstance(read, Copied):
            self.chains.copied(str(read.key), read.original, read.acked, read.chain)
        return read, FACT_SIZE

    def _put_all(self, reads: Sequence[Line | Entry]) -> bool:
        """Prepare what one read returned and buffer it in order, waiting while the buffer is
        full; False when stopping. Groups go in under one lock round each (``put_many``), not
        one per line."""
        pending = [self._sized(read) for read in reads]
        start = 0
        while start < len(pending):
            if self.stopping.is_set():
                return False
            taken = self.buffer.put_many(pending[start:], timeout=0.5)
            if not taken:
                self.health.beat("reader")
                if self.buffer.closed:
                    return False
                continue
            lines = sum(1 for entry, _ in pending[start : start + taken] if isinstance(entry, Item))
            if lines:
                self.metrics.read(lines)
            start += taken
        return True

    def _observe_files(self) -> None:
        lag = self.tailer.lag()
        self.behind = sum(lag.values())
        self.metrics.set_lag(lag)


class Preparer:
    """One line read to its buffered item: normalized, chained in read order, encoded.

    The reader's per-line step on its own, without threads or files, so that the
    differential test (``devtools.differential``) runs exactly this code in both builds.
    """

    def __init__(
        self, normalizer: Normalizer, chains: Chains, *, host_name: str, line_max: int
    ) -> None:
        self.normalizer = normalizer
        self.chains = chains
        self.host_name = host_name
        self.line_max = line_max

    def __call__(self, line: Line) -> Item:
        """An over-long line or an unencodable document is a rejection; the latter, an
        event, is a declared gap in its chain."""
        key, content = str(line.key), line.key.content_id
        if line.oversized:
            place = self.chains.advance(key, content, line.offset, line.end, None)
            return Item(line, over_long(line, self.line_max), place)
        source = Source(line.path, line.key.content_id, line.offset, self.host_name)
        outcome = self.normalizer(line.data, source)
        event = (outcome.event_id, outcome.event) if isinstance(outcome, Normalized) else None
        chain = self.chains.advance(key, content, line.offset, line.end, event)
        if not isinstance(outcome, Normalized):
            return Item(line, outcome, chain)
        try:
            parcel = Parcel.of(outcome.event_id, outcome.event, outcome.changes)
        except (TypeError, orjson.JSONEncodeError) as exc:
            return Item(line, Rejected(f"cannot encode the document: {exc}"), chain)
        return Item(line, parcel, chain)


def over_long(line: Line, line_max: int) -> Rejected:
    """A line longer than ``LINE_MAX_BYTES``: dead-lettered with its length and first bytes."""
    return Rejected(
        f"line of {line.oversized} bytes is longer than LINE_MAX_BYTES ({line_max}); "
        f"the dead letter keeps its first {len(line.data)} bytes",
        stage=Stage.DECODE,
    )
