"""The bulk sink: events and their change documents into Elasticsearch, one typed fate each.

Layered like elasticsearch-py's bulk helpers, without their matrix of boolean flags:
:meth:`BulkSink.ship` expands each event into its documents (the event, then one per change),
all ``create`` actions with an explicit ``_id`` so a replay is a 409; :meth:`BulkSink.deliver`
re-sends *only* the documents whose outcome is :class:`Retry`, with exponential backoff and
full jitter, without limit; :meth:`BulkSink.send` is one bulk request with one outcome per
document: :class:`Delivered` (201/200), :class:`Duplicate` (409, a success), :class:`Retry`
(429, 5xx, connection errors, timeouts; also 401/403/404, the cluster's or the operator's
problem, never the document's) or :class:`Rejected` (any other 4xx: refused for its content,
it goes to the dead-letter file). An event is settled only when its document and each of its
change documents has a final outcome.

Documents that may already be in the index (the replay window after a restart, anything sent
in a request whose answer was lost) are first looked up across the whole target by
:class:`indexer.dedup.Deduplicator`: ``op_type=create`` only sees the current backing index.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, SerializationError, TransportError

from common.log import get_logger
from common.retry import Backoff, RetryPolicy
from indexer.dedup import Deduplicator, IncompleteCheck

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


class EncodedEvent:
    """A document serialized ahead of time; ``event.ingested`` is added at send time.

    Buffered events are kept as bytes, not dicts: a nested ECS document costs several times
    its JSON size as Python objects, and the buffer's byte bound should mean what it says.
    (The slices below are also right-sized copies of orjson's over-allocated output.)
    The ``event`` object is kept apart from the rest so the ship time can be spliced in
    without parsing the JSON again.
    """

    __slots__ = ("_event", "_rest")

    def __init__(self, document: Mapping[str, Any]) -> None:
        inner = document.get("event")
        inner = {k: v for k, v in inner.items() if k != "ingested"} if inner else {}
        self._event = orjson.dumps(inner)[1:]  # b'"kind":"event",...}' or b'}'
        self._rest = orjson.dumps({k: v for k, v in document.items() if k != "event"})[1:]

    def __len__(self) -> int:
        return len(self._event) + len(self._rest) + 40

    def render(self, ingested: bytes) -> bytes:
        """The document with ``event.ingested`` set; ``ingested`` is a JSON string literal."""
        event = b'{"event":{"ingested":' + ingested
        event += b"," + self._event if self._event != b"}" else b"}"
        return event + (b"," + self._rest if self._rest != b"}" else b"}")


@dataclass(slots=True)
class Doc:
    """One document of a bulk request, rendered with the ship time when sent."""

    target: str
    doc_id: str
    body: EncodedEvent
    verify: bool = False  # look it up across the whole target before creating it


@dataclass(slots=True)
class Shipment(Generic[T]):
    """One event to deliver: its document, its change documents, and the caller's handle."""

    tag: T
    event_id: str
    event: EncodedEvent
    changes: list[tuple[str, EncodedEvent]] = field(default_factory=list)
    verify: bool = False

    @classmethod
    def of(
        cls,
        tag: T,
        event_id: str,
        event: Mapping[str, Any],
        changes: Sequence[tuple[str, Mapping[str, Any]]] = (),
        *,
        verify: bool = False,
    ) -> Shipment[T]:
        """Encode a normalized event and its change documents."""
        encoded = [(change_id, EncodedEvent(change)) for change_id, change in changes]
        return cls(tag, event_id, EncodedEvent(event), encoded, verify)

    def __len__(self) -> int:
        return len(self.event) + sum(len(body) + len(cid) + 60 for cid, body in self.changes)


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
        for shipment in shipments:
            start = len(docs)
            docs.append(Doc(self.events_target, shipment.event_id, shipment.event, shipment.verify))
            docs.extend(
                Doc(self.changes_target, change_id, body, shipment.verify)
                for change_id, body in shipment.changes
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
                found = self._check([docs[i] for i in sorted(verify)], backoff)
                if found is None:
                    if self.interrupt.is_set():
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
                    log.warning("bulk_item_rejected", target=docs[i].target, id=docs[i].doc_id,
                                status=outcome.status, error_type=outcome.error_type,
                                reason=outcome.reason)  # fmt: skip
            pending = [i for i in sent if isinstance(outcomes[i], Retry)]
            if not pending:
                break
            retries = [outcome for outcome in answers if isinstance(outcome, Retry)]
            verify = {i for i in pending if _is_ambiguous(outcomes[i])}
            problem = self._count_retries(retries)
            if not self._wait(backoff, problem, "bulk_retry", documents=len(pending)):
                return outcomes
        return outcomes

    def _check(self, docs: list[Doc], backoff: Backoff) -> set[tuple[str, str]] | None:
        """The replay check; None (after backing off) when it could not be answered."""
        try:
            return self.dedup.existing((doc.target, doc.doc_id) for doc in docs)
        except IncompleteCheck as exc:
            problem = Retry(str(exc))
        except (ApiError, TransportError) as exc:
            problem = _classify_error(exc)
        self._wait(backoff, problem, "replay_check_failed")
        return None

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
        body = _bulk_body(docs, orjson.dumps(self._now_iso()))
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


def _bulk_body(docs: Sequence[Doc], ingested: bytes) -> bytes:
    """NDJSON: a ``create`` action with ``_id`` and the document, per document."""
    parts: list[bytes] = []
    for doc in docs:
        action = {"create": {"_index": doc.target, "_id": doc.doc_id}}
        parts.append(orjson.dumps(action))
        parts.append(doc.body.render(ingested))
    parts.append(b"")
    return b"\n".join(parts)


def _classify_item(item: dict[str, Any]) -> ItemOutcome:
    status = int(item.get("status", 0))
    if status in (200, 201):
        return Delivered(status)
    if status == 409:
        return Duplicate()
    error_type, reason = _error_of(item.get("error"))
    if status >= 500 or status in _RETRY_STATUS or status == 0:
        return Retry(f"{status} {error_type}", status)
    return Rejected(status, error_type, reason)


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
    return float(value) if value is not None and value.strip().isdigit() else None


def _error_of(error: Any) -> tuple[str, str]:
    """Elasticsearch's error type and reason, following ``caused_by`` for the specifics."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]
    if not isinstance(error, dict):
        return "error", str(error) if error else "no reason given"
    error_type = str(error.get("type", "error"))
    reason = str(error.get("reason", ""))
    cause = error.get("caused_by")
    for _ in range(3):
        if not isinstance(cause, dict):
            break
        reason += f"; caused by {cause.get('type', 'error')}: {cause.get('reason', '')}"
        cause = cause.get("caused_by")
    return error_type, reason
