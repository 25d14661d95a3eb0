"""The chains in Elasticsearch: signed checkpoints written, stored events read back for verify.

The pure half is ``chain``; this module only moves documents. Events are read one
stream at a time, in sequence order (a sorted scroll), so ``verify`` holds one stream's
records in memory, never the whole index, and a document's ``_source`` is dropped as soon as
its digest is taken.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import groupby
from typing import Any

from elasticsearch import AuthorizationException, ConflictError, Elasticsearch, NotFoundError

from chain.checkpoint import ChainKey, Checkpoint
from chain.verify import Evidence, Finding, Record, Report, assemble, gather

PAGE = 500
_KEEP = "2m"
_STREAM = "appmixer.chain.stream"
_SEQ = "appmixer.chain.seq"


def write_checkpoint(es: Elasticsearch, target: str, checkpoint: Checkpoint) -> None:
    """Store one checkpoint; already there (a retry after a lost answer) is success."""
    with contextlib.suppress(ConflictError):
        es.create(index=target, id=checkpoint.doc_id, document=checkpoint.to_document())


def read_checkpoints(es: Elasticsearch, target: str) -> tuple[list[Checkpoint], list[Finding]]:
    """Every checkpoint in ``target``; a document that is not one is a finding."""
    found: list[Checkpoint] = []
    problems: list[Finding] = []
    for hit in _scroll(es, target, {"match_all": {}}, ["_doc"]):
        try:
            found.append(Checkpoint.from_document(hit["_source"]))
        except ValueError as exc:
            problems.append(Finding("bad_checkpoint", str(exc), doc_id=hit["_id"]))
    return found, problems


def chained_query(evidence: Evidence) -> dict[str, Any]:
    """Chained events after each stream's anchor (all of a stream without one)."""
    anchored = {stream: head.seq for stream, head in evidence.anchors.items()}
    if not anchored:
        return {"exists": {"field": _STREAM}}
    after = [
        {"bool": {"filter": [{"term": {_STREAM: s}}, {"range": {_SEQ: {"gt": seq}}}]}}
        for s, seq in sorted(anchored.items())
    ]
    others = {
        "bool": {
            "filter": [{"exists": {"field": _STREAM}}],
            "must_not": [{"terms": {_STREAM: sorted(anchored)}}],
        }
    }
    return {"bool": {"should": [*after, others], "minimum_should_match": 1}}


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


def read_streams(
    es: Elasticsearch, target: str, evidence: Evidence
) -> Iterator[tuple[str, list[Record]]]:
    """(stream, its records) for each stream with events after its anchor, stream by stream."""
    sort = [
        {_STREAM: {"order": "asc", "unmapped_type": "keyword"}},
        {_SEQ: {"order": "asc", "unmapped_type": "long"}},
    ]
    hits = _scroll(es, target, chained_query(evidence), sort)
    records = (Record.from_source(hit["_id"], hit["_source"]) for hit in hits)
    for stream, group in groupby(records, key=lambda record: record.stream or ""):
        yield stream, list(group)


def read_unchained(es: Elasticsearch, target: str, since: datetime | None) -> Iterator[Record]:
    for hit in _scroll(es, target, unchained_query(since), ["_doc"]):
        yield Record.from_source(hit["_id"], hit["_source"])


def _scroll(
    es: Elasticsearch, target: str, query: dict[str, Any], sort: Iterable[Any]
) -> Iterator[dict[str, Any]]:
    """Every hit of a query, in ``sort`` order, page by page; a missing target has none."""
    # Best effort: what was written a moment ago becomes visible. A reader may not refresh
    # (the privilege is maintenance's); the node refreshes every second by itself.
    with contextlib.suppress(AuthorizationException):
        es.indices.refresh(index=target, ignore_unavailable=True, allow_no_indices=True)
    try:
        page = es.search(
            index=target,
            query=query,
            sort=list(sort),
            size=PAGE,
            scroll=_KEEP,
            ignore_unavailable=True,
            allow_no_indices=True,
        ).body
    except NotFoundError:
        return
    scroll_id = page.get("_scroll_id")
    try:
        while page["hits"]["hits"]:
            yield from page["hits"]["hits"]
            page = es.scroll(scroll_id=scroll_id, scroll=_KEEP).body
            scroll_id = page.get("_scroll_id", scroll_id)
    finally:
        if scroll_id:
            with contextlib.suppress(NotFoundError):
                es.clear_scroll(scroll_id=scroll_id)


def verify(
    es: Elasticsearch,
    events_target: str,
    checkpoints_target: str,
    keys: list[ChainKey],
    *,
    since: datetime | None = None,
    local: Iterable[Checkpoint] = (),
) -> Report:
    """Replay the stored chains against the signed checkpoints (index and ``local`` ones)."""
    stored, problems = read_checkpoints(es, checkpoints_target)
    unique = {checkpoint.doc_id: checkpoint for checkpoint in [*stored, *local]}
    evidence = gather(unique.values(), keys, since)
    evidence.findings[:0] = problems
    return assemble(
        read_streams(es, events_target, evidence),
        read_unchained(es, events_target, since),
        evidence,
    )
