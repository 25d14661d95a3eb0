"""The chains in Elasticsearch: signed checkpoints written, stored events read back for verify.

The pure half is ``chain``; this module only moves documents. Events are read one
stream at a time, in sequence order, through a point in time and ``search_after`` (nothing
to expire however long the walk), page by page: an untouched stream is checked as it
streams past, and a document's ``_source`` is dropped as soon as its digest is taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Final

from elasticsearch import (
    ApiError,
    AuthorizationException,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    TransportError,
)

from chain.checkpoint import ChainKey, Checkpoint
from chain.verify import Finding, Record, Report, Stored, assemble, gather

PAGE = 1000
_KEEP = "5m"  # renewed by every page; a page is read, walked and dropped well within it
_STREAM = "appmixer.chain.stream"
_SEQ = "appmixer.chain.seq"
_BY_POSITION: Final = [
    {_STREAM: {"order": "asc", "unmapped_type": "keyword"}},
    {_SEQ: {"order": "asc", "unmapped_type": "long", "missing": "_last"}},
]


def write_checkpoint(es: Elasticsearch, target: str, checkpoint: Checkpoint) -> None:
    """Store one checkpoint; already there (a retry after a lost answer) is success."""
    with contextlib.suppress(ConflictError):
        es.create(index=target, id=checkpoint.doc_id, document=checkpoint.to_document())


def read_checkpoints(es: Elasticsearch, target: str) -> tuple[list[Stored], list[Finding]]:
    """Every checkpoint in ``target`` with its ``_id``; a document that is not one (whatever
    its shape) is a finding naming its ``_id``."""
    found: list[Stored] = []
    problems: list[Finding] = []
    for hit in _pages(es, target, {"match_all": {}}, []):
        try:
            found.append((hit["_id"], Checkpoint.from_document(hit.get("_source"))))
        except ValueError as exc:
            problems.append(Finding("bad_checkpoint", str(exc), doc_id=hit["_id"]))
    return found, problems


def chained_query() -> dict[str, Any]:
    """Every chained event: a ``--since`` anchor is applied while walking, so the query stays
    one clause however many streams there are."""
    return {"exists": {"field": _STREAM}}


def unchained_query(since: datetime | None) -> dict[str, Any]:
    """Events without chain fields (with ``since``: ingested or dated from then on)."""
    query: dict[str, Any] = {"bool": {"must_not": [{"exists": {"field": _STREAM}}]}}
    if since is not None:
        when = since.isoformat()
        query["bool"]["should"] = [
            {"range": {"event.ingested": {"gte": when}}},
            {"range": {"@timestamp": {"gte": when}}},
            {"bool": {"must_not": [{"exists": {"field": "event.ingested"}}]}},
        ]
        query["bool"]["minimum_should_match"] = 1
    return query


def read_streams(es: Elasticsearch, target: str) -> Iterator[tuple[str, Iterator[Record]]]:
    """(stream, its records in sequence order) for each stream, one after the other; each
    stream's records are read lazily, so only a page is in memory at a time."""
    hits = _pages(es, target, chained_query(), _BY_POSITION)
    records = (Record.from_source(hit["_id"], hit["_source"]) for hit in hits)
    yield from groupby(records, key=lambda record: record.stream or "")


def read_unchained(es: Elasticsearch, target: str, since: datetime | None) -> Iterator[Record]:
    for hit in _pages(es, target, unchained_query(since), []):
        yield Record.from_source(hit["_id"], hit["_source"])


def _pages(
    es: Elasticsearch, target: str, query: dict[str, Any], sort: list[Any]
) -> Iterator[dict[str, Any]]:
    """Every hit of a query in ``sort`` order, through a point in time and ``search_after``
    (no scroll context to expire); a missing target has none."""
    # Best effort: what was written a moment ago becomes visible. A reader may not refresh
    # (the privilege is maintenance's); the node refreshes every second by itself.
    with contextlib.suppress(AuthorizationException):
        es.indices.refresh(index=target, ignore_unavailable=True, allow_no_indices=True)
    try:
        pit = es.open_point_in_time(index=target, keep_alive=_KEEP, ignore_unavailable=True)
    except NotFoundError:
        return
    pit_id = pit.body["id"]
    after: list[Any] | None = None
    try:
        while True:
            extra: dict[str, Any] = {} if after is None else {"search_after": after}
            page = es.search(
                pit={"id": pit_id, "keep_alive": _KEEP},
                query=query,
                sort=[*sort, "_shard_doc"],
                size=PAGE,
                track_total_hits=False,
                **extra,
            ).body
            pit_id = page.get("pit_id", pit_id)
            hits = page["hits"]["hits"]
            if not hits:
                return
            after = hits[-1]["sort"]
            yield from hits
            if len(hits) < PAGE:
                return
    finally:
        with contextlib.suppress(NotFoundError, ApiError, TransportError):
            es.close_point_in_time(id=pit_id)


def verify(
    es: Elasticsearch,
    events_target: str,
    checkpoints_target: str,
    keys: list[ChainKey],
    *,
    since: datetime | None = None,
    local: Iterable[Checkpoint | Stored] = (),
    local_problems: Iterable[Finding] = (),
    now: datetime | None = None,
) -> Report:
    """Replay the stored chains against the signed checkpoints (index and ``local`` ones)."""
    stored, problems = read_checkpoints(es, checkpoints_target)
    mine = [
        item if isinstance(item, tuple) else (f"local:{n}", item) for n, item in enumerate(local, 1)
    ]
    evidence = gather([*stored, *mine], keys, since, now or datetime.now(UTC))
    evidence.findings[:0] = [*problems, *local_problems]
    return assemble(
        read_streams(es, events_target),
        read_unchained(es, events_target, since),
        evidence,
    )
