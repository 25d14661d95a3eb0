"""``BulkSink.deliver`` and ``ship`` without a node: a fake of the sink's own
:class:`~indexer.sink.Transport` answers, a fake clock backs off. The replay check turns
found documents into duplicates, an ambiguous failure makes the next try look first, a 409
is a replay or another line's id by the chain place, and an interrupt during a backoff
returns what is settled so far."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch, TransportError

from indexer.access import AccessReport
from indexer.dedup import IncompleteCheck
from indexer.outcomes import Answer, Delivered, Duplicate, Refused, RequestFailed, Retry
from indexer.sink import BulkSink, Doc, ElasticTransport, EncodedEvent, Shipment
from tests.fakes import FakeClock, retrier_on

EVENTS, CHANGES = "logs-appmixer.audit-t", "logs-appmixer.audit_changes-t"
CREATED = {"create": {"status": 201}}
CONFLICT = {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}
BUSY = {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}
MAPPING = {"create": {"status": 400, "error": {"type": "document_parsing_exception"}}}
DOWN = RequestFailed(Retry("connection error", ambiguous=True))

Post = Callable[[Sequence[Doc]], Answer]


class FakeTransport:
    """Answers each bulk request with the next of ``answers`` (a list of items per
    document, or a failure); the replay check finds the ids in ``stored``."""

    def __init__(
        self,
        answers: Sequence[Callable[[Sequence[Doc]], Answer]] = (),
        *,
        stored: Iterable[tuple[str, str]] = (),
        places: dict[str, tuple[str, int] | None] | None = None,
        check_failures: Sequence[Exception] = (),
        places_unknown: bool = False,
    ) -> None:
        self.places_unknown = places_unknown
        self.answers = list(answers)
        self.stored = set(stored)
        self.places = places if places is not None else {}
        self.check_failures = list(check_failures)
        self.requests: list[list[str]] = []
        self.checks: list[list[str]] = []

    def post(self, docs: Sequence[Doc], ingested: bytes) -> Answer:
        assert ingested.startswith(b'"')
        assert ingested.endswith(b'Z"')
        self.requests.append([doc.doc_id for doc in docs])
        answer = self.answers.pop(0) if self.answers else all_created
        return answer(docs)

    def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        asked = list(pairs)
        self.checks.append([doc_id for _target, doc_id in asked])
        if self.check_failures:
            raise self.check_failures.pop(0)
        return {pair for pair in asked if pair in self.stored}

    def chain_places(self, target: str, ids: list[str]) -> dict[str, tuple[str, int] | None]:
        assert target == EVENTS
        if self.places_unknown:
            raise IncompleteCheck("1 shard(s) did not answer")
        return {doc_id: self.places.get(doc_id) for doc_id in ids}


def all_created(docs: Sequence[Doc]) -> Answer:
    return [CREATED] * len(docs)


def each(*items: dict[str, Any]) -> Callable[[Sequence[Doc]], Answer]:
    def answer(docs: Sequence[Doc]) -> Answer:
        assert len(docs) == len(items)
        return list(items)

    return answer


def failed(_docs: Sequence[Doc]) -> Answer:
    return DOWN


class Rig:
    def __init__(self, transport: FakeTransport, *, interrupt_after: int | None = None) -> None:
        self.clock = FakeClock()
        self.interrupt = threading.Event()
        self.pauses = 0
        self.interrupt_after = interrupt_after
        self.retrier = retrier_on(self.clock, self.interrupt, self._sleep)
        self.transport = transport
        self.sink = BulkSink(
            None,
            EVENTS,
            CHANGES,
            retrier=self.retrier,
            transport=transport,
            now_iso=lambda: "2026-01-01T00:00:00.000Z",
        )

    def _sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
        self.pauses += 1
        if self.interrupt_after is not None and self.pauses >= self.interrupt_after:
            self.interrupt.set()


def doc(doc_id: str, *, verify: bool = False, target: str = EVENTS, place: int = 1) -> Doc:
    body = {"event": {"id": doc_id}, "appmixer": {"chain": {"stream": "s", "seq": place}}}
    return Doc(target, doc_id, EncodedEvent(body), verify)


class TestDeliver:
    def test_everything_created_in_one_request(self) -> None:
        rig = Rig(FakeTransport())
        assert rig.sink.deliver([doc("a"), doc("b")]) == [Delivered(201), Delivered(201)]
        assert rig.transport.requests == [["a", "b"]]
        assert rig.transport.checks == []

    def test_verify_first_a_found_document_is_a_duplicate_and_not_sent(self) -> None:
        transport = FakeTransport(stored={(EVENTS, "a")})
        rig = Rig(transport)
        outcomes = rig.sink.deliver([doc("a", verify=True), doc("b", verify=True), doc("c")])
        assert outcomes == [Duplicate(), Delivered(201), Delivered(201)]
        assert transport.checks == [["a", "b"]]
        assert transport.requests == [["b", "c"]]

    def test_everything_found_sends_nothing(self) -> None:
        transport = FakeTransport(stored={(EVENTS, "a")})
        rig = Rig(transport)
        assert rig.sink.deliver([doc("a", verify=True)]) == [Duplicate()]
        assert transport.requests == []

    def test_only_what_is_left_to_retry_is_sent_again(self) -> None:
        transport = FakeTransport([each(CREATED, BUSY, MAPPING)])
        rig = Rig(transport)
        outcomes = rig.sink.deliver([doc("a"), doc("b"), doc("c")])
        assert outcomes[0] == Delivered(201)
        assert outcomes[1] == Delivered(201)
        assert isinstance(outcomes[2], Refused)
        assert outcomes[2].status == 400
        assert transport.requests == [["a", "b", "c"], ["b"]]
        assert transport.checks == []  # a 429 is not ambiguous: no lookup before the retry
        assert rig.clock.slept == [1.0]

    def test_an_ambiguous_failure_is_checked_again_before_the_retry(self) -> None:
        """The request may have landed: the next try asks the whole target first, and what
        is found there is a duplicate, not sent again."""
        transport = FakeTransport([failed], stored={(EVENTS, "a")})
        rig = Rig(transport)
        outcomes = rig.sink.deliver([doc("a"), doc("b")])
        assert outcomes == [Duplicate(), Delivered(201)]
        assert transport.checks == [["a", "b"]]
        assert transport.requests == [["a", "b"], ["b"]]

    def test_a_check_that_fails_is_retried_after_a_backoff(self) -> None:
        transport = FakeTransport(check_failures=[IncompleteCheck("1 shard(s) did not answer")])
        rig = Rig(transport)
        assert rig.sink.deliver([doc("a", verify=True)]) == [Delivered(201)]
        assert transport.checks == [["a"], ["a"]]
        assert rig.clock.slept == [1.0]

    def test_interrupt_during_a_backoff_returns_what_is_settled(self) -> None:
        transport = FakeTransport([each(CREATED, BUSY)] + [each(BUSY)] * 10)
        rig = Rig(transport, interrupt_after=2)
        outcomes = rig.sink.deliver([doc("a"), doc("b")])
        assert outcomes[0] == Delivered(201)
        assert isinstance(outcomes[1], Retry)
        assert len(transport.requests) == 2  # the second backoff was cut short
        assert rig.interrupt.is_set()

    def test_interrupt_while_the_check_cannot_be_answered(self) -> None:
        transport = FakeTransport(check_failures=[IncompleteCheck("no shard")] * 5)
        rig = Rig(transport, interrupt_after=1)
        outcomes = rig.sink.deliver([doc("a", verify=True)])
        assert outcomes == [Retry("not sent")]
        assert transport.requests == []

    def test_already_interrupted_sends_once_and_stops(self) -> None:
        transport = FakeTransport([failed])
        rig = Rig(transport)
        rig.interrupt.set()
        outcomes = rig.sink.deliver([doc("a")])
        assert outcomes == [DOWN.retry]
        assert transport.requests == [["a"]]

    @pytest.mark.parametrize(
        ("stored", "expected"),
        [
            (("s", 1), Duplicate()),  # the same place: this very line, stored earlier
            (("s", 9), Duplicate(replay=False)),  # elsewhere: another line's id
            (None, Duplicate(replay=False)),  # stored without a place: not this line
        ],
    )
    def test_a_409_is_a_replay_only_at_the_same_chain_place(
        self, stored: tuple[str, int] | None, expected: Duplicate
    ) -> None:
        transport = FakeTransport([each(CONFLICT)], places={"a": stored})
        rig = Rig(transport)
        assert rig.sink.deliver([doc("a")]) == [expected]

    def test_a_409_whose_place_cannot_be_looked_up_is_a_replay(self) -> None:
        transport = FakeTransport([each(CONFLICT)], places_unknown=True)
        rig = Rig(transport)
        assert rig.sink.deliver([doc("a")]) == [Duplicate()]

    def test_a_409_of_a_change_document_is_not_looked_up(self) -> None:
        transport = FakeTransport([each(CONFLICT)], places={"a:0": ("s", 9)})
        rig = Rig(transport)
        assert rig.sink.deliver([doc("a:0", target=CHANGES)]) == [Duplicate(replay=False)]


class TestShip:
    def test_an_event_is_settled_when_its_changes_are(self) -> None:
        """One result per event: its own outcome, its changes delivered or refused."""
        transport = FakeTransport([each(CREATED, CREATED, MAPPING, CREATED)])
        rig = Rig(transport)
        first = Shipment.of("t1", "e1", {"n": 1}, [("e1:0", {"c": 0}), ("e1:1", {"c": 1})])
        second = Shipment.of("t2", "e2", {"n": 2})
        results = rig.sink.ship([first, second])
        assert [r.shipment.tag for r in results] == ["t1", "t2"]
        assert results[0].changes_delivered == 1
        assert [cid for cid, _ in results[0].rejected_changes] == ["e1:1"]
        assert all(r.acknowledged for r in results)
        assert transport.requests == [["e1", "e1:0", "e1:1", "e2"]]

    def test_an_event_with_a_change_left_to_retry_is_not_acknowledged(self) -> None:
        transport = FakeTransport([each(CREATED, BUSY)])
        rig = Rig(transport, interrupt_after=1)
        results = rig.sink.ship([Shipment.of("t", "e", {"n": 1}, [("e:0", {"c": 0})])])
        assert results[0].outcome == Delivered(201)
        assert results[0].unsettled_changes == 1
        assert not results[0].acknowledged

    def test_the_documents_sent_are_the_encoded_event(self) -> None:
        bodies: list[dict[str, Any]] = []

        def answer(docs: Sequence[Doc]) -> Answer:
            bodies.extend(orjson.loads(d.body.data) for d in docs)
            return [CREATED] * len(docs)

        rig = Rig(FakeTransport([answer]))
        rig.sink.ship([Shipment.of("t", "e", {"event": {"id": "e"}, "message": "m"})])
        assert [(b["event"]["id"], b["message"]) for b in bodies] == [("e", "m")]


def test_a_sink_needs_a_client_or_a_transport() -> None:
    with pytest.raises(ValueError, match="client or a transport"):
        BulkSink(None, EVENTS, CHANGES)


class Observed:
    def __init__(self) -> None:
        self.bulks: list[float] = []
        self.retries: list[tuple[str, int]] = []

    def observe_bulk(self, seconds: float) -> None:
        self.bulks.append(seconds)

    def retry(self, reason: str, n: int = 1) -> None:
        self.retries.append((reason, n))


def test_requests_and_retries_are_observed() -> None:
    transport = FakeTransport([each(BUSY, BUSY)])
    rig = Rig(transport)
    observed = Observed()
    rig.sink.observer = observed
    assert rig.sink.deliver([doc("a"), doc("b")]) == [Delivered(201)] * 2
    assert len(observed.bulks) == 2
    assert observed.retries == [("429 es_rejected_execution_exception", 2)]


class TestElasticTransport:
    """The transport over a real client with no node behind it: a failed request is an
    answer (never an exception), and told to the access report; a failed check raises."""

    @pytest.fixture
    def transport(self) -> ElasticTransport:
        es = Elasticsearch("http://127.0.0.1:9", max_retries=0, request_timeout=2)
        return ElasticTransport(es, AccessReport())

    def test_a_failed_bulk_request_is_an_answer(self, transport: ElasticTransport) -> None:
        answer = transport.post([doc("a")], b'"2026-01-01T00:00:00.000Z"')
        assert isinstance(answer, RequestFailed)
        assert answer.retry.ambiguous

    def test_a_failed_check_raises(self, transport: ElasticTransport) -> None:
        with pytest.raises(TransportError):
            transport.existing([(EVENTS, "a")])
        with pytest.raises(TransportError):
            transport.chain_places(EVENTS, ["a"])

    def test_through_the_sink_a_check_failure_backs_off(self, transport: ElasticTransport) -> None:
        rig = Rig(FakeTransport(), interrupt_after=1)
        rig.sink.transport = transport
        assert rig.sink.deliver([doc("a", verify=True)]) == [Retry("not sent")]
        assert rig.clock.slept == [1.0]
