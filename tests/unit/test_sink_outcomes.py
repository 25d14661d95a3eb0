"""What each bulk answer means for a document: classification tables, Retry-After, splitting.

These are pure functions fed with the shapes Elasticsearch answers with (bulk response items,
client exceptions carrying a status, headers and an error body). No node is involved and no
claim is made here about what a node sends; the integration tests check that against a real
one (``tests/integration/test_sink.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from elastic_transport import (
    ApiResponseMeta,
    ConnectionError,
    ConnectionTimeout,
    HttpHeaders,
    NodeConfig,
    SerializationError,
)
from elasticsearch import ApiError

from indexer.outcomes import (
    Answer,
    Delivered,
    Duplicate,
    ItemOutcome,
    Refused,
    RequestFailed,
    Retry,
    classify_item,
    classify_items,
    error_of,
    request_failure,
    resolve,
    retry_after,
)

MAPPING = {"type": "document_parsing_exception", "reason": "failed to parse field [user]"}


def api_error(status: int, body: Any = None, headers: dict[str, str] | None = None) -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(headers or {}),
        duration=0.01,
        node=NodeConfig("http", "localhost", 9200),
    )
    return ApiError(f"status {status}", meta=meta, body=body)


def fate(outcome: ItemOutcome) -> str:
    """The four fates a document can have; there is no fifth (nothing is dropped)."""
    if isinstance(outcome, Delivered | Duplicate):
        return "delivered" if isinstance(outcome, Delivered) else "duplicate"
    return "retry" if isinstance(outcome, Retry) else "dead-letter"


class TestClassifyItem:
    @pytest.mark.parametrize(
        ("status", "error", "expected"),
        [
            (201, None, "delivered"),
            (200, None, "delivered"),
            (409, {"type": "version_conflict_engine_exception"}, "duplicate"),
            (400, MAPPING, "dead-letter"),
            (400, {"type": "mapper_parsing_exception", "reason": "object mapping"}, "dead-letter"),
            (400, {"type": "illegal_argument_exception", "reason": "limit"}, "dead-letter"),
            (413, {"type": "too_large"}, "dead-letter"),
            (422, {"type": "unprocessable"}, "dead-letter"),
            (401, {"type": "security_exception"}, "retry"),
            (403, {"type": "security_exception", "reason": "unauthorized"}, "retry"),
            (404, {"type": "index_not_found_exception"}, "retry"),
            (408, {"type": "timeout"}, "retry"),
            (429, {"type": "es_rejected_execution_exception"}, "retry"),
            (500, {"type": "exception"}, "retry"),
            (502, None, "retry"),
            (503, {"type": "unavailable_shards_exception"}, "retry"),
            (504, None, "retry"),
            (0, None, "retry"),
        ],
    )
    def test_every_status_has_one_fate(
        self, status: int, error: dict[str, str] | None, expected: str
    ) -> None:
        """Each item status (with its error type) maps to exactly one of the four fates."""
        item: dict[str, Any] = {"status": status}
        if error is not None:
            item["error"] = error
        assert fate(classify_item(item)) == expected

    def test_a_missing_status_is_retried(self) -> None:
        """An item without a status says nothing about the document: it is sent again."""
        assert classify_item({}) == Retry("0 error", 0)

    def test_refusal_keeps_elasticsearch_words(self) -> None:
        """A refused document carries the status, type and reason, with the cause chain."""
        error = {**MAPPING, "caused_by": {"type": "illegal_state", "reason": "bad date"}}
        assert classify_item({"status": 400, "error": error}) == Refused(
            400,
            "document_parsing_exception",
            "failed to parse field [user]; caused by illegal_state: bad date",
        )

    def test_retry_names_status_and_type(self) -> None:
        """A retried item says why, for the retry counter's reason label."""
        outcome = classify_item({"status": 429, "error": {"type": "es_rejected_execution"}})
        assert outcome == Retry("429 es_rejected_execution", 429)

    def test_items_of_the_wrong_count_are_all_retried_as_ambiguous(self) -> None:
        """A response whose item count does not match the request proves nothing."""
        outcomes = classify_items([{"create": {"status": 201}}], expected=3)
        assert outcomes == [Retry("malformed bulk response", ambiguous=True)] * 3


class TestRequestFailure:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (api_error(429, {"error": {"type": "es_rejected_execution_exception"}}), "retry"),
            (api_error(503, {"error": {"type": "cluster_block_exception"}}), "retry"),
            (api_error(500), "retry"),
            (api_error(401, {"error": {"type": "security_exception"}}), "retry"),
            (api_error(403, {"error": {"type": "security_exception"}}), "retry"),
            (api_error(404, {"error": {"type": "index_not_found_exception"}}), "retry"),
            (api_error(400, {"error": MAPPING}), "split"),
            (api_error(413, "Request Entity Too Large"), "split"),
            (ConnectionTimeout("timed out"), "retry"),
            (ConnectionError("refused"), "retry"),
            (SerializationError("not JSON"), "retry"),
        ],
    )
    def test_every_request_error_is_retried_or_split(self, exc: Any, expected: str) -> None:
        """A failed request is never a loss: its documents are retried or the request split."""
        failure = request_failure(exc)
        assert ("split" if failure.splittable else "retry") == expected

    @pytest.mark.parametrize(
        ("exc", "ambiguous"),
        [
            (api_error(429), False),
            (api_error(401), False),
            (api_error(500), True),
            (api_error(503), True),
            (ConnectionTimeout("timed out"), True),
            (ConnectionError("reset"), True),
            (SerializationError("half a body"), True),
        ],
    )
    def test_ambiguous_when_the_request_may_have_landed(self, exc: Any, ambiguous: bool) -> None:
        """Timeouts, lost connections and 5xx may have been applied: the replay check runs."""
        assert request_failure(exc).retry.ambiguous is ambiguous

    def test_retry_after_is_carried(self) -> None:
        """A 429 with Retry-After carries the server's delay to the backoff."""
        failure = request_failure(api_error(429, None, {"Retry-After": "7"}))
        assert failure.retry.after == 7.0
        assert failure.retry.status == 429


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"Retry-After": "30"}, 30.0),
            ({"retry-after": " 5 "}, 5.0),
            ({"Retry-After": "0"}, 0.0),
            ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
            ({"Retry-After": "-1"}, None),
            ({"Retry-After": "1.5"}, None),
            ({}, None),
        ],
    )
    def test_seconds_only(self, headers: dict[str, str], expected: float | None) -> None:
        """Delay-seconds are honoured (any case); a date or garbage leaves the policy alone."""
        assert retry_after(HttpHeaders(headers)) == expected


class TestErrorOf:
    def test_plain_text_body(self) -> None:
        """A proxy's text body becomes the reason, under a generic type."""
        assert error_of("Request Entity Too Large") == ("error", "Request Entity Too Large")

    def test_empty_body(self) -> None:
        assert error_of(None) == ("error", "no reason given")


class Poisoned:
    """Answers bulk requests the way a node refusing one document as a whole would."""

    def __init__(self, poison: set[int], status: int = 400) -> None:
        self.poison = poison
        self.status = status
        self.requests: list[int] = []

    def __call__(self, docs: Sequence[int]) -> Answer:
        self.requests.append(len(docs))
        if self.poison.intersection(docs):
            return RequestFailed(
                Retry(f"{self.status} x", self.status), self.status, MAPPING["type"], "bad"
            )
        return [{"create": {"status": 201}} for _ in docs]


class TestSplitInHalf:
    def test_one_poisoned_document_among_a_thousand(self) -> None:
        """A 400 for the whole request isolates the one bad document; 999 are delivered."""
        post = Poisoned({617})
        outcomes = resolve(list(range(1000)), post)
        assert len(outcomes) == 1000
        assert [i for i, o in enumerate(outcomes) if isinstance(o, Refused)] == [617]
        assert outcomes[617] == Refused(400, "document_parsing_exception", "bad")
        assert all(isinstance(o, Delivered) for i, o in enumerate(outcomes) if i != 617)
        assert len(post.requests) <= 2 * 10 + 1  # about 2 * log2(1000) requests, not 1000

    def test_413_splits_the_same_way(self) -> None:
        """Too large as a whole: halves until the oversized document is alone."""
        post = Poisoned({0}, status=413)
        outcomes = resolve(list(range(8)), post)
        assert [type(o) for o in outcomes] == [Refused] + [Delivered] * 7

    def test_two_poisoned_documents(self) -> None:
        """Each bad document is found; the rest still go."""
        outcomes = resolve(list(range(100)), Poisoned({3, 90}))
        assert [i for i, o in enumerate(outcomes) if isinstance(o, Refused)] == [3, 90]

    def test_a_retryable_request_failure_is_not_split(self) -> None:
        """429/5xx/timeouts retry every document of the request; splitting would not help."""
        calls: list[int] = []

        def post(docs: Sequence[int]) -> Answer:
            calls.append(len(docs))
            return RequestFailed(Retry("429 busy", 429, after=3.0), 429, "busy", "")

        outcomes = resolve(list(range(10)), post)
        assert calls == [10]
        assert outcomes == [Retry("429 busy", 429, after=3.0)] * 10

    def test_nothing_to_send_sends_nothing(self) -> None:
        calls: list[int] = []

        def post(docs: Sequence[int]) -> Answer:
            calls.append(len(docs))
            return []

        assert resolve([], post) == []
        assert calls == []
