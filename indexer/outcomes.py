"""What Elasticsearch's answer means for each document: pure functions over its responses.

One bulk request ends in one of two ways. Either Elasticsearch answered, with one item per
document, each classified by :func:`classify_item`; or the request itself failed (an HTTP
error, a timeout, a dropped connection), classified by :func:`request_failure`. Each document
gets one typed outcome:

- :class:`Delivered` (200/201) and :class:`Duplicate` (409: the ``_id`` is already there,
  a replay) are final successes;
- :class:`Retry` (429, 5xx, 408, connection errors, timeouts; also 401/403/404, which are the
  cluster's or the operator's problem, never the document's) is sent again later;
  ``ambiguous`` marks a request that may have been applied anyway, so the replay check runs
  before the next try; ``after`` is the server's Retry-After;
- :class:`Refused` (any other 4xx: refused for its content) is final and dead-lettered.

There is no outcome that drops a document or stops the agent: every answer maps onto one of
these four. A whole request refused with 400 or 413 is split in half until the document the
server cannot take is alone (:func:`resolve`), so one poisoned document costs about
``2 * log2(n)`` extra requests and never holds back the others.

Nothing here performs I/O: :class:`indexer.sink.BulkSink` sends, these functions decide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from elastic_transport import ConnectionTimeout, TlsError
from elasticsearch import ApiError, SerializationError, TransportError

D = TypeVar("D")

RETRY_STATUS = frozenset({401, 403, 404, 408, 429})
SPLIT_STATUS = frozenset({400, 413})


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int = 201


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The document was already there (409, or found by the replay check): a success.

    ``replay`` is False for a 409 whose stored event sits elsewhere in the hash chains (the
    sink looks): the id is another line's or another agent's (the same record twice in a
    file, one file tailed by two pods). Its place in this agent's chain then stays empty,
    and is declared as a gap.
    """

    status: int = 409
    replay: bool = True


@dataclass(frozen=True, slots=True)
class Retry:
    """Not taken this time; ``ambiguous`` when the request may have been applied anyway."""

    reason: str
    status: int | None = None
    ambiguous: bool = False
    after: float | None = None  # the server's Retry-After, seconds


@dataclass(frozen=True, slots=True)
class Refused:
    """Refused for its content; ``error_type`` and ``reason`` are Elasticsearch's words."""

    status: int
    error_type: str
    reason: str

    def describe(self) -> str:
        return f"{self.error_type}: {self.reason}"


ItemOutcome = Delivered | Duplicate | Retry | Refused
FINAL = (Delivered, Duplicate, Refused)


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A bulk request that got no per-item answer: why, and what its documents get."""

    retry: Retry
    status: int | None = None
    error_type: str = "error"
    reason: str = ""

    @property
    def splittable(self) -> bool:
        """400/413 for the request as a whole: some document in it is the problem."""
        return self.status in SPLIT_STATUS


# What posting one bulk request returns: the response's items, or why there are none.
Answer = list[dict[str, Any]] | RequestFailed


# The outcomes of every successful item are immutable and alike: shared, not made per item.
_SUCCESSES: dict[int, ItemOutcome] = {
    200: Delivered(200),
    201: Delivered(201),
    409: Duplicate(replay=False),
}


def classify_item(item: Mapping[str, Any]) -> ItemOutcome:
    """The outcome of one item of a bulk response (the value under its action name)."""
    status = int(item.get("status", 0))
    success = _SUCCESSES.get(status)
    if success is not None:
        return success
    error_type, reason = error_of(item.get("error"))
    if status >= 500 or status in RETRY_STATUS or status == 0:
        return Retry(f"{status} {error_type}", status)
    return Refused(status, error_type, reason)


def classify_items(items: Sequence[Mapping[str, Any]], expected: int) -> list[ItemOutcome]:
    """Outcomes of a bulk response's items; all :class:`Retry` when the count is wrong."""
    if len(items) != expected:  # a proxy or filter ate the answer: nothing is known
        return [Retry("malformed bulk response", ambiguous=True)] * expected
    return [classify_item(next(iter(item.values()), {})) for item in items]


def request_failure(exc: ApiError | TransportError) -> RequestFailed:
    """A failed request: say why, whether it may have landed, and the server's Retry-After."""
    if isinstance(exc, ApiError):
        status = exc.status_code
        headers = exc.meta.headers if exc.meta is not None else {}
        error_type, reason = error_of(exc.body)
        retry = Retry(
            f"{status} {error_type}", status, ambiguous=status >= 500, after=retry_after(headers)
        )
        return RequestFailed(retry, status, error_type, reason)
    if isinstance(exc, ConnectionTimeout):
        return RequestFailed(Retry("timeout", ambiguous=True))
    if isinstance(exc, SerializationError):
        return RequestFailed(Retry("unreadable response", ambiguous=True))
    if isinstance(exc, TlsError):  # a certificate the CA setting does not vouch for
        return RequestFailed(Retry("TLS error", ambiguous=True))
    return RequestFailed(Retry("connection error", ambiguous=True))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header in seconds (HTTP allows a number of seconds or a date; a date
    is ignored, the policy's own backoff applies)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return float(value) if value is not None and value.strip().isdigit() else None


def error_of(error: Any) -> tuple[str, str]:
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


def resolve(docs: Sequence[D], post: Callable[[Sequence[D]], Answer]) -> list[ItemOutcome]:
    """Post ``docs`` as one request and classify the answer; split a 400/413 in half.

    A request refused as a whole is sent again as two halves, recursively, until the
    document the server cannot take is alone: it is :class:`Refused`, the others go on.
    """
    if not docs:
        return []
    answer = post(docs)
    if not isinstance(answer, RequestFailed):
        return classify_items(answer, len(docs))
    if not answer.splittable:
        return [answer.retry] * len(docs)
    if len(docs) > 1:
        middle = len(docs) // 2
        return resolve(docs[:middle], post) + resolve(docs[middle:], post)
    assert answer.status is not None  # splittable means a status
    return [Refused(answer.status, answer.error_type, answer.reason)]
