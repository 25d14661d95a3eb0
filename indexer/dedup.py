"""No duplicates across rollover: find documents that are already somewhere in the target.

``op_type=create`` turns a replayed ``_id`` into a 409 only within one backing index. After a
data stream rolls over, the same ``_id`` can be created again in the new write index: a
duplicate no per-request check can see. Every peer shipper has this hole.

Only two kinds of document can already be in the index: lines in the registry's window
``[acked, sent)`` after a restart (sent before the crash, never acknowledged), and documents
of a request whose answer was lost (timeout, dropped connection). For those, and only those,
we ask the whole target before writing: an ``ids`` query on the data stream (or alias) name
searches every backing index. First, the requests that may still be writing them (the node
finishes a request whose client is gone) are waited for (:mod:`indexer.inflight`); then a
refresh makes documents indexed a moment ago visible to search. Both are cheap because they
run only for these rare windows, never on the hot path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from elasticsearch import Elasticsearch

from indexer.inflight import RequestWatch


class IncompleteCheck(Exception):
    """Not every shard answered: absence of an id proves nothing, so the check is retried."""


# One search returns at most index.max_result_window (10,000 by default) hits.
CHUNK = 5000


class Deduplicator:
    """Answers "which of these (target, _id) pairs exist anywhere in their target?"."""

    def __init__(
        self, es: Elasticsearch, chunk: int = CHUNK, *, watch: RequestWatch | None = None
    ) -> None:
        """``watch``: requests of this and earlier runs that may still be executing;
        :meth:`existing` waits for them first (see :mod:`indexer.inflight`). Not
        :meth:`chain_places`: it is asked only about ids a 409 proved stored."""
        if not 0 < chunk <= 10_000:
            raise ValueError("chunk must be between 1 and 10000")
        self.es = es
        self.chunk = chunk
        self.watch = watch
        self.lookups = 0  # how many searches ran (for tests and the debug log)

    def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (target, _id) pairs among ``pairs`` already indexed.

        Raises on Elasticsearch errors, and :class:`IncompleteCheck` when a shard failed.
        """
        by_target: dict[str, list[str]] = defaultdict(list)
        for target, doc_id in pairs:
            by_target[target].append(doc_id)
        if by_target and self.watch is not None:
            self.watch.settle()  # once for every target: the requests are the same
        found: set[tuple[str, str]] = set()
        for target, ids in by_target.items():
            found.update((target, doc_id) for doc_id in self.find_ids(target, ids))
        return found

    def chain_places(self, target: str, ids: list[str]) -> dict[str, tuple[str, int] | None]:
        """Where each of ``ids`` stored in ``target`` sits in the hash chains."""
        fields = ["appmixer.chain.stream", "appmixer.chain.seq"]
        return {
            hit["_id"]: chain_place(hit.get("_source"))
            for hit in self._lookup(target, ids, source_includes=fields)
        }

    def find_ids(self, target: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` exist in any backing index of ``target`` (missing target: none)."""
        filtered = {"source": False, "filter_path": "hits.hits._id,_shards.failed"}
        return {str(hit["_id"]) for hit in self._lookup(target, ids, **filtered)}

    def _lookup(self, target: str, ids: list[str], **options: Any) -> Iterator[dict[str, Any]]:
        """The hits for ``ids`` in any backing index of ``target``, after a refresh."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        self.es.indices.refresh(index=target, ignore_unavailable=True, allow_no_indices=True)
        for start in range(0, len(unique), self.chunk):
            part = unique[start : start + self.chunk]
            response = self.es.search(
                index=target,
                query={"ids": {"values": part}},
                size=len(part),
                track_total_hits=False,
                ignore_unavailable=True,
                allow_no_indices=True,
                **options,
            )
            self.lookups += 1
            failed = response.body.get("_shards", {}).get("failed", 0)
            if failed:  # a shard that did not answer may hold the very ids we look for
                raise IncompleteCheck(f"{failed} shard(s) of {target} did not answer")
            body = response.body if isinstance(response.body, dict) else {}
            yield from (hit for hit in body.get("hits", {}).get("hits", []) if "_id" in hit)


def chain_place(source: Any) -> tuple[str, int] | None:
    """(stream, seq) of a stored or sent event document, if it has one."""
    appmixer = source.get("appmixer") if isinstance(source, dict) else None
    chain = appmixer.get("chain") if isinstance(appmixer, dict) else None
    if not isinstance(chain, dict):
        return None
    stream, seq = chain.get("stream"), chain.get("seq")
    if not isinstance(stream, str) or not isinstance(seq, int):
        return None
    return stream, seq
