"""The bulk sink: events and their change documents into Elasticsearch, one typed fate each.

Layered like elasticsearch-py's bulk helpers, without their matrix of boolean flags:
:meth:`BulkSink.ship` expands each event into its documents (the event, then one per change),
all ``create`` actions with an explicit ``_id`` so a replay is a 409; :meth:`BulkSink.deliver`
re-sends *only* the documents whose outcome is :class:`Retry`, backing off through the
agent's one :class:`common.retry.Retrier`, without limit; :meth:`BulkSink.send` is one bulk
request, whose answer :mod:`indexer.outcomes` turns into one outcome per document
(delivered, duplicate, retry or refused; a 400/413 for the whole request is split in half).
An event is settled only when its document and each of its change documents has a final
outcome.

Documents that may already be in the index (the caller marks them: the replay window after
a restart; and anything sent in a request whose answer was lost) are first looked up across
the whole target by :class:`indexer.dedup.Deduplicator`: ``op_type=create`` only sees the
current backing index. What the sink needs of Elasticsearch is one small protocol,
:class:`Transport` (:class:`ElasticTransport` over the client), so its decisions are tested
without a node.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

import orjson
from elasticsearch import ApiError, Elasticsearch, TransportError

from common.clock import utc_now_iso
from common.log import get_logger
from common.retry import Backoff, Retrier
from indexer.access import AccessReport
from indexer.bulkbody import Doc, EncodedEvent, Parcel, bulk_body, documents
from indexer.dedup import Deduplicator, IncompleteCheck, chain_place
from indexer.inflight import RequestWatch, opaque_id
from indexer.outcomes import (
    FINAL,
    Answer,
    Delivered,
    Duplicate,
    ItemOutcome,
    Refused,
    Retry,
    classify_item,
    request_failure,
    resolve,
)

__all__ = [
    "BulkSink",
    "Delivered",
    "Doc",
    "Duplicate",
    "ElasticTransport",
    "EncodedEvent",
    "EventResult",
    "Parcel",
    "Refused",
    "Retry",
    "RunIds",
    "Shipment",
    "Transport",
]

log = get_logger(__name__)

T = TypeVar("T")
_FILTER = "errors,items.*.status,items.*.error"
# What a document created by a bulk request is classified as: one shared outcome, so a
# request whose every document was created is recognised with one ``list.count``.
_CREATED = classify_item({"status": 201})
_VERIFY = attrgetter("verify")


class Shipment(Generic[T]):
    """A parcel on its way, with the caller's handle (``tag``) travelling along with it.

    ``verify`` asks for the replay check first: the documents may already be indexed. A
    plain slotted class, made once per event: a frozen dataclass would set each field
    through ``object.__setattr__``, and nothing hashes or compares shipments.
    """

    __slots__ = ("parcel", "tag", "verify")

    def __init__(self, tag: T, parcel: Parcel, verify: bool = False) -> None:
        self.tag = tag
        self.parcel = parcel
        self.verify = verify

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
        """Encode a normalized event and its change documents, tagged."""
        return cls(tag, Parcel.of(event_id, event, changes), verify)

    @property
    def event_id(self) -> str:
        return self.parcel.event_id


class EventResult(Generic[T]):
    """The fate of one event: its own outcome and its change documents' refusals.

    A plain slotted class, made once per event; an event without refused change documents
    shares one empty tuple instead of a list of its own.
    """

    __slots__ = (
        "changes_delivered",
        "outcome",
        "rejected_changes",
        "shipment",
        "unsettled_changes",
    )

    def __init__(
        self,
        shipment: Shipment[T],
        outcome: ItemOutcome,
        changes_delivered: int = 0,
        rejected_changes: Sequence[tuple[str, Refused]] = (),
        unsettled_changes: int = 0,
    ) -> None:
        self.shipment = shipment
        self.outcome = outcome
        self.changes_delivered = changes_delivered
        self.rejected_changes = rejected_changes
        self.unsettled_changes = unsettled_changes

    @property
    def acknowledged(self) -> bool:
        """Settled: nothing of this event is left to retry."""
        return isinstance(self.outcome, FINAL) and self.unsettled_changes == 0


class SinkObserver(Protocol):
    def observe_bulk(self, seconds: float) -> None: ...

    def retry(self, reason: str, n: int = 1) -> None: ...


class Transport(Protocol):
    """What the sink asks of Elasticsearch: one bulk request, and the duplicate check."""

    def post(self, docs: Sequence[Doc], ingested: bytes) -> Answer:
        """One bulk request of ``create`` actions; its items, or why it failed (never
        raises for an Elasticsearch error)."""
        ...

    def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (target, _id) pairs already stored anywhere in their target; raises
        ``ApiError``, ``TransportError`` or :class:`IncompleteCheck`."""
        ...

    def chain_places(self, target: str, ids: list[str]) -> dict[str, tuple[str, int] | None]:
        """Where each stored event of ``ids`` sits in the hash chains; raises like
        :meth:`existing`."""
        ...


@dataclass(frozen=True)
class RunIds:
    """This run's id and the ids of the runs before it (newest first); ``window_extended``:
    when an earlier run last extended the replay window (None when none is open)."""

    own: str
    earlier: tuple[str, ...] = ()
    window_extended: float | None = None


class ElasticTransport:
    """:class:`Transport` over an Elasticsearch client; each answer is told to ``access``."""

    def __init__(self, es: Elasticsearch, access: AccessReport, run: RunIds | None = None) -> None:
        """``run``: this run's id (on every bulk request, as ``X-Opaque-Id``) and the earlier
        runs' ids, whose requests the replay check waits for (:mod:`indexer.inflight`)."""
        self.es = es
        self.access = access
        watch = None
        self._bulk_client = es
        if run is not None:
            self._bulk_client = es.options(opaque_id=opaque_id(run.own))
            watch = RequestWatch(es, [run.own, *run.earlier], window_extended=run.window_extended)
        self.dedup = Deduplicator(es, watch=watch)

    def post(self, docs: Sequence[Doc], ingested: bytes) -> Answer:
        body = bulk_body(docs, ingested)
        try:
            response = self._bulk_client.bulk(operations=body, filter_path=_FILTER)  # type: ignore[arg-type]
        except (ApiError, TransportError) as exc:
            self.access.failed(exc)
            return request_failure(exc)
        self.access.answered()
        items = response.body.get("items", [])
        return items if isinstance(items, list) else []

    def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        try:
            return self.dedup.existing(pairs)
        except (ApiError, TransportError) as exc:
            self.access.failed(exc)
            raise

    def chain_places(self, target: str, ids: list[str]) -> dict[str, tuple[str, int] | None]:
        return self.dedup.chain_places(target, ids)


class BulkSink:
    """Sends documents with ``create`` actions and settles each one; see the module doc."""

    def __init__(
        self,
        es: Elasticsearch | None,
        events_target: str,
        changes_target: str,
        *,
        retrier: Retrier | None = None,
        observer: SinkObserver | None = None,
        now_iso: Callable[[], str] = utc_now_iso,
        access: AccessReport | None = None,
        transport: Transport | None = None,
        run: RunIds | None = None,
    ) -> None:
        """``es`` is the client, or None when ``transport`` stands for it; ``run`` names the
        requests (see :class:`ElasticTransport`)."""
        self.events_target = events_target
        self.changes_target = changes_target
        self.retrier = retrier if retrier is not None else Retrier()
        self.observer = observer
        self._now_iso = now_iso
        self.access = access if access is not None else AccessReport()
        if transport is None:
            if es is None:
                raise ValueError("a client or a transport is needed")
            transport = ElasticTransport(es, self.access, run)
        self.transport = transport

    # ------------------------------------------------------------------ events

    def ship(self, shipments: Sequence[Shipment[T]]) -> list[EventResult[T]]:
        """Deliver events with their change documents; one result per event, in order."""
        outcomes = self.deliver(documents(shipments, self.events_target, self.changes_target))
        if outcomes.count(_CREATED) == len(outcomes):  # the common case: all created
            return [EventResult(s, _CREATED, len(s.parcel.changes)) for s in shipments]
        results: list[EventResult[T]] = []
        at = 0
        for shipment in shipments:
            own = outcomes[at]
            count = len(shipment.parcel.changes)
            if count:
                results.append(_with_changes(shipment, own, outcomes[at + 1 : at + 1 + count]))
            else:
                results.append(EventResult(shipment, own))
            at += 1 + count
        return results

    # ------------------------------------------------------------------ documents

    def deliver(self, docs: Sequence[Doc]) -> list[ItemOutcome]:
        """Send until every document has a final outcome, or until interrupted.

        Only the documents still in :class:`Retry` are sent again. When interrupted (the
        shutdown grace ran out) the unsettled ones are returned as :class:`Retry`.
        """
        outcomes: list[ItemOutcome] = [Retry("not sent")] * len(docs)
        pending = list(range(len(docs)))
        flags = list(map(_VERIFY, docs))
        verify = {i for i, flag in enumerate(flags) if flag} if True in flags else set()
        backoff = self.retrier.backoff()
        while pending:
            if verify:
                found = self._check([docs[i] for i in sorted(verify)], backoff)
                if found is None:
                    if self.retrier.interrupted:
                        return outcomes
                    continue
                for i in verify:
                    if (docs[i].target, docs[i].doc_id) in found:
                        outcomes[i] = Duplicate()
                verify.clear()
                pending = [i for i in pending if not isinstance(outcomes[i], Duplicate)]
                if not pending:
                    break
            whole = len(pending) == len(docs)
            sent, answers = pending, self.send(docs if whole else [docs[i] for i in pending])
            if answers.count(_CREATED) == len(answers):  # the common case: all created
                return answers if whole else _fill(outcomes, sent, _CREATED)
            answers = self._taken_or_replayed(sent, answers, docs)
            for i, outcome in zip(sent, answers, strict=True):
                outcomes[i] = outcome
                if isinstance(outcome, Refused):
                    log.warning("bulk_item_rejected", target=docs[i].target, id=docs[i].doc_id,
                                status=outcome.status, error_type=outcome.error_type,
                                reason=outcome.reason)  # fmt: skip
            pending = [i for i in sent if isinstance(outcomes[i], Retry)]
            if not pending:
                break
            retries = [outcome for outcome in answers if isinstance(outcome, Retry)]
            verify = {i for i in pending if _is_ambiguous(outcomes[i])}
            problem = self._count_retries(retries)
            if not self.retrier.pause(
                backoff, "bulk_retry", hint=problem.after, reason=problem.reason,
                documents=len(pending),
            ):  # fmt: skip
                return outcomes
        return outcomes

    def _taken_or_replayed(
        self, sent: list[int], answers: list[ItemOutcome], docs: Sequence[Doc]
    ) -> list[ItemOutcome]:
        """A 409 is another line's id only when the stored event sits elsewhere in the hash
        chains; the same place means this very line was stored already (a request of an
        earlier run that the node finished late, a line read again): a replay. When that
        cannot be looked up, a replay is assumed."""
        taken = [
            k for k, (i, outcome) in enumerate(zip(sent, answers, strict=True))
            if isinstance(outcome, Duplicate) and not outcome.replay
            and docs[i].target == self.events_target
        ]  # fmt: skip
        if not taken:
            return answers
        ids = [docs[sent[k]].doc_id for k in taken]
        try:
            stored = self.transport.chain_places(self.events_target, ids)
        except (ApiError, TransportError, IncompleteCheck) as exc:
            log.warning("conflict_lookup_failed", error=str(exc), documents=len(ids))
            stored = None
        checked = list(answers)
        for k in taken:
            doc = docs[sent[k]]
            mine = chain_place(orjson.loads(doc.body.data))
            if stored is None or mine is None or stored.get(doc.doc_id) == mine:
                checked[k] = Duplicate()
        return checked

    def _check(self, docs: list[Doc], backoff: Backoff) -> set[tuple[str, str]] | None:
        """The replay check; None (after backing off) when it could not be answered."""
        try:
            return self.transport.existing((doc.target, doc.doc_id) for doc in docs)
        except IncompleteCheck as exc:
            problem = Retry(str(exc))
        except (ApiError, TransportError) as exc:
            problem = request_failure(exc).retry
        self.retrier.pause(
            backoff, "replay_check_failed", hint=problem.after, reason=problem.reason
        )
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

    def send(self, docs: Sequence[Doc]) -> list[ItemOutcome]:
        """One bulk request (split on 400/413); one outcome per document, in order.

        Never raises for Elasticsearch errors: :mod:`indexer.outcomes` classifies them.
        """
        return resolve(docs, self._post)

    def _post(self, docs: Sequence[Doc]) -> Answer:
        """Post one bulk request, timed; the response's items, or why the request failed."""
        started = time.perf_counter()
        try:
            return self.transport.post(docs, orjson.dumps(self._now_iso()))
        finally:
            if self.observer is not None:
                self.observer.observe_bulk(time.perf_counter() - started)


def _fill(
    outcomes: list[ItemOutcome], indexes: list[int], outcome: ItemOutcome
) -> list[ItemOutcome]:
    """``outcomes`` with ``outcome`` at ``indexes``: the documents of a retry all created."""
    for i in indexes:
        outcomes[i] = outcome
    return outcomes


def _with_changes(
    shipment: Shipment[T], own: ItemOutcome, changes: list[ItemOutcome]
) -> EventResult[T]:
    """The result of an event with change documents: how many are delivered, refused, open."""
    result = EventResult(shipment, own)
    refused: list[tuple[str, Refused]] = []
    for (change_id, _body), outcome in zip(shipment.parcel.changes, changes, strict=True):
        if isinstance(outcome, Refused):
            refused.append((change_id, outcome))
        elif isinstance(outcome, Delivered):
            result.changes_delivered += 1
        elif not isinstance(outcome, FINAL):
            result.unsettled_changes += 1
    if refused:
        result.rejected_changes = refused
    return result


def _is_ambiguous(outcome: ItemOutcome) -> bool:
    return isinstance(outcome, Retry) and outcome.ambiguous
