"""The bulk sink: events and their change documents into Elasticsearch, one typed fate each.

Layered like elasticsearch-py's bulk helpers, without their matrix of boolean flags:

1. :meth:`BulkSink.ship` expands each event into its documents (the event, then one document
   per change), all ``create`` actions with an explicit ``_id``, so a replay is a 409;
2. :meth:`BulkSink.deliver` sends them and keeps re-sending *only* the documents whose outcome
   is :class:`Retry`, with exponential backoff and full jitter, without limit;
3. :meth:`BulkSink.send` is one bulk request and returns one outcome per document:
   :class:`Delivered` (201/200), :class:`Duplicate` (409, a success),
   :class:`Retry` (429, 5xx, connection errors, timeouts; also 401/403/404, which are the
   cluster's or the operator's problem, never the document's) or :class:`Rejected`
   (any other 4xx: the document itself is refused; it goes to the dead-letter file).

An event is acknowledged only when its event document and every change document has a
final outcome. A rejected change document is dead-lettered with the event's line while the
event still counts as shipped: the line's fate is settled either way.

Documents that may already be in the index (the replay window after a restart, and anything
sent in a request whose answer was lost) are looked up first across the whole target by
:class:`indexer.dedup.Deduplicator`, because ``op_type=create`` only sees the current
backing index of a data stream.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, SerializationError, TransportError

from agent.log import get_logger
from indexer.dedup import Deduplicator
from indexer.retry import Backoff, RetryPolicy

log = get_logger("indexer.sink")

T = TypeVar("T")
_FILTER = "errors,items.*.status,items.*.error"
_RETRY_STATUS = frozenset({401, 403, 404, 408, 429})
_SPLIT_STATUS = frozenset({400, 413})


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int = 201


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The document was already there (409, or found by the replay check): a success."""

    status: int = 409


@dataclass(frozen=True, slots=True)
class Retry:
    """Not taken this time; ``ambiguous`` when the request may have been applied anyway."""

    reason: str
    status: int | None = None
    ambiguous: bool = False
    after: float | None = None  # the server's Retry-After, seconds


@dataclass(frozen=True, slots=True)
class Rejected:
    """Refused for its content; ``error_type`` and ``reason`` are Elasticsearch's words."""

    status: int
    error_type: str
    reason: str

    def describe(self) -> str:
        return f"{self.error_type}: {self.reason}"


ItemOutcome = Delivered | Duplicate | Retry | Rejected
FINAL = (Delivered, Duplicate, Rejected)


@dataclass(slots=True)
class Doc:
    """One document of a bulk request."""

    target: str
    doc_id: str
    source: dict[str, Any]
    verify: bool = False  # look it up across the whole target before creating it


@dataclass
class Shipment(Generic[T]):
    """One event to deliver: its document, its change documents, and the caller's handle."""

    tag: T
    event_id: str
    event: dict[str, Any]
    changes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    verify: bool = False


@dataclass
class EventResult(Generic[T]):
    """The fate of one event: its own outcome and its change documents' rejections."""

    shipment: Shipment[T]
    outcome: ItemOutcome
    changes_delivered: int = 0
    rejected_changes: list[tuple[str, Rejected]] = field(default_factory=list)
    unsettled_changes: int = 0

    @property
    def acknowledged(self) -> bool:
        """Settled: nothing of this event is left to retry."""
        return isinstance(self.outcome, FINAL) and self.unsettled_changes == 0


class SinkObserver(Protocol):
    def observe_bulk(self, seconds: float) -> None: ...

    def retry(self, reason: str, n: int = 1) -> None: ...


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BulkSink:
    """Sends documents with ``create`` actions and settles each one; see the module doc."""

    def __init__(
        self,
        es: Elasticsearch,
        events_target: str,
        changes_target: str,
        *,
        policy: RetryPolicy | None = None,
        observer: SinkObserver | None = None,
        interrupt: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        now_iso: Callable[[], str] = _utc_now_iso,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.es = es
        self.events_target = events_target
        self.changes_target = changes_target
        self.policy = policy or RetryPolicy()
        self.observer = observer
        self.interrupt = interrupt or threading.Event()
        self._clock = clock
        self._random = random
        self._now_iso = now_iso
        self._heartbeat = heartbeat
        self.dedup = Deduplicator(es)

    # ------------------------------------------------------------------ events

    def ship(self, shipments: Sequence[Shipment[T]]) -> list[EventResult[T]]:
        """Deliver events with their change documents; one result per event, in order."""
        docs: list[Doc] = []
        spans: list[tuple[int, int]] = []
        ingested = self._now_iso()
        for shipment in shipments:
            start = len(docs)
            shipment.event.setdefault("event", {})["ingested"] = ingested
            docs.append(Doc(self.events_target, shipment.event_id, shipment.event, shipment.verify))
            docs.extend(
                Doc(self.changes_target, change_id, change, shipment.verify)
                for change_id, change in shipment.changes
            )
            spans.append((start, len(docs)))
        outcomes = self.deliver(docs)
        results: list[EventResult[T]] = []
        for shipment, (start, end) in zip(shipments, spans, strict=True):
            own, changes = outcomes[start], outcomes[start + 1 : end]
            result = EventResult(shipment, own)
            result.unsettled_changes = sum(1 for o in changes if not isinstance(o, FINAL))
            for (change_id, _doc), outcome in zip(shipment.changes, changes, strict=True):
                if isinstance(outcome, Rejected):
                    result.rejected_changes.append((change_id, outcome))
                elif isinstance(outcome, Delivered):
                    result.changes_delivered += 1
            results.append(result)
        return results

    # ------------------------------------------------------------------ documents

    def deliver(self, docs: Sequence[Doc]) -> list[ItemOutcome]:
        """Send until every document has a final outcome, or until interrupted.

        Only the documents still in :class:`Retry` are sent again. When interrupted (the
        shutdown grace ran out) the unsettled ones are returned as :class:`Retry`.
        """
        outcomes: list[ItemOutcome] = [Retry("not sent")] * len(docs)
        pending = list(range(len(docs)))
        verify = {i for i in pending if docs[i].verify}
        backoff = Backoff(self.policy, self._clock, self._random)
        while pending:
            if verify:
                try:
                    found = self.dedup.existing([docs[i] for i in sorted(verify)])
                except (ApiError, TransportError) as exc:
                    if not self._wait(backoff, _classify_error(exc), "replay_check_failed"):
                        return outcomes
                    continue
                for i in verify:
                    if (docs[i].target, docs[i].doc_id) in found:
                        outcomes[i] = Duplicate()
                verify.clear()
                pending = [i for i in pending if not isinstance(outcomes[i], Duplicate)]
                if not pending:
                    break
            sent, answers = pending, self.send([docs[i] for i in pending])
            for i, outcome in zip(sent, answers, strict=True):
                outcomes[i] = outcome
                if isinstance(outcome, Rejected):
                    _log_rejection(docs[i], outcome)
            pending = [i for i in sent if isinstance(outcomes[i], Retry)]
            if not pending:
                break
            retries = [outcome for outcome in answers if isinstance(outcome, Retry)]
            verify = {i for i in pending if _is_ambiguous(outcomes[i])}
            problem = self._count_retries(retries)
            if not self._wait(backoff, problem, "bulk_retry", documents=len(pending)):
                return outcomes
        return outcomes

    def _count_retries(self, retries: list[Retry]) -> Retry:
        """Count the retries by reason; one summary stands for the problem in the log."""
        reasons = Counter(retry.reason for retry in retries)
        if self.observer is not None:
            for reason, n in reasons.items():
                self.observer.retry(reason, n)
        hints = [retry.after for retry in retries if retry.after is not None]
        summary = ", ".join(f"{reason} x{n}" for reason, n in reasons.most_common())
        return Retry(summary, after=max(hints) if hints else None)

    def _wait(self, backoff: Backoff, problem: Retry, event: str, **fields: Any) -> bool:
        """Back off before the next attempt; False when interrupted (give up for now)."""
        if self.interrupt.is_set():
            return False
        delay = backoff.failed(problem.after)
        log.warning(event, reason=problem.reason, attempt=backoff.attempts, delay=delay, **fields)
        deadline = self._clock() + delay
        while (left := deadline - self._clock()) > 0:
            if self._heartbeat is not None:
                self._heartbeat()
            if self.interrupt.wait(min(left, 1.0)):
                return False
        return True

    def send(self, docs: Sequence[Doc]) -> list[ItemOutcome]:
        """One bulk request; one outcome per document, in order. Never raises for ES errors."""
        if not docs:
            return []
        body = _bulk_body(docs)
        started = time.perf_counter()
        try:
            response = self.es.bulk(operations=body, filter_path=_FILTER)  # type: ignore[arg-type]
        except (ApiError, TransportError) as exc:
            outcome = _classify_error(exc)
            if isinstance(exc, ApiError) and exc.status_code in _SPLIT_STATUS:
                if len(docs) > 1:  # find the one the server cannot take; send the others
                    middle = len(docs) // 2
                    return self.send(docs[:middle]) + self.send(docs[middle:])
                error = _error_of(exc.body)
                return [Rejected(exc.status_code, *error)]
            return [outcome] * len(docs)
        finally:
            if self.observer is not None:
                self.observer.observe_bulk(time.perf_counter() - started)
        items = response.body.get("items", [])
        if len(items) != len(docs):  # a proxy or filter ate the answer: nothing is known
            return [Retry("malformed bulk response", ambiguous=True)] * len(docs)
        return [_classify_item(next(iter(item.values()))) for item in items]


def _is_ambiguous(outcome: ItemOutcome) -> bool:
    return isinstance(outcome, Retry) and outcome.ambiguous


def _log_rejection(doc: Doc, outcome: Rejected) -> None:
    log.warning(
        "bulk_item_rejected",
        target=doc.target,
        id=doc.doc_id,
        status=outcome.status,
        error_type=outcome.error_type,
        reason=outcome.reason,
    )


def _bulk_body(docs: Sequence[Doc]) -> bytes:
    parts: list[bytes] = []
    for doc in docs:
        action = {"create": {"_index": doc.target, "_id": doc.doc_id}}
        parts.append(orjson.dumps(action))
        parts.append(orjson.dumps(doc.source))
    parts.append(b"")
    return b"\n".join(parts)


def _classify_item(item: dict[str, Any]) -> ItemOutcome:
    status = int(item.get("status", 0))
    if status in (200, 201):
        return Delivered(status)
    if status == 409:
        return Duplicate()
    if status >= 500 or status in _RETRY_STATUS or status == 0:
        error_type, _reason = _error_of(item.get("error"))
        return Retry(f"{status} {error_type}", status)
    return Rejected(status, *_error_of(item.get("error")))


def _classify_error(exc: ApiError | TransportError) -> Retry:
    """A failed request: every document in it is retried; say why, and if it may have landed."""
    if isinstance(exc, ApiError):
        status = exc.status_code
        after = _retry_after(exc)
        error_type, _reason = _error_of(exc.body)
        return Retry(f"{status} {error_type}", status, ambiguous=status >= 500, after=after)
    if isinstance(exc, ConnectionTimeout):
        return Retry("timeout", ambiguous=True)
    if isinstance(exc, SerializationError):
        return Retry("unreadable response", ambiguous=True)
    return Retry("connection error", ambiguous=True)


def _retry_after(exc: ApiError) -> float | None:
    value = exc.meta.headers.get("retry-after") if exc.meta is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_of(error: Any) -> tuple[str, str]:
    """Elasticsearch's error type and reason, following ``caused_by`` for the specifics."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]
    if not isinstance(error, dict):
        return "error", str(error) if error else "no reason given"
    error_type = str(error.get("type", "error"))
    reason = str(error.get("reason", ""))
    cause = error.get("caused_by")
    depth = 0
    while isinstance(cause, dict) and depth < 3:
        reason += f"; caused by {cause.get('type', 'error')}: {cause.get('reason', '')}"
        cause = cause.get("caused_by")
        depth += 1
    return error_type, reason
