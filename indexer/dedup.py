"""No duplicates across rollover: find documents that are already somewhere in the target.

``op_type=create`` turns a replayed ``_id`` into a 409 only within one backing index. After a
data stream rolls over, the same ``_id`` can be created again in the new write index: a
duplicate no per-request check can see. Every peer shipper has this hole.

Only two kinds of document can already be in the index: lines in the registry's window
``[acked, sent)`` after a restart (sent before the crash, never acknowledged), and documents
of a request whose answer was lost (timeout, dropped connection). For those, and only those,
we ask the whole target before writing: an ``ids`` query on the data stream (or alias) name
searches every backing index. A refresh first makes documents indexed a moment ago visible
to search; it is cheap because it runs only for these rare windows, never on the hot path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from elasticsearch import Elasticsearch

if TYPE_CHECKING:
    from indexer.sink import Doc

# One search returns at most index.max_result_window (10,000 by default) hits.
CHUNK = 5000


class Deduplicator:
    """Answers "which of these (target, _id) pairs exist anywhere in their target?"."""

    def __init__(self, es: Elasticsearch, chunk: int = CHUNK) -> None:
        if not 0 < chunk <= 10_000:
            raise ValueError("chunk must be between 1 and 10000")
        self.es = es
        self.chunk = chunk
        self.lookups = 0  # how many searches ran (for tests and the debug log)

    def existing(self, docs: Iterable[Doc]) -> set[tuple[str, str]]:
        """The (target, _id) pairs among ``docs`` already indexed; raises on ES errors."""
        by_target: dict[str, list[str]] = defaultdict(list)
        for doc in docs:
            by_target[doc.target].append(doc.doc_id)
        found: set[tuple[str, str]] = set()
        for target, ids in by_target.items():
            found.update((target, doc_id) for doc_id in self.find_ids(target, ids))
        return found

    def find_ids(self, target: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` exist in any backing index of ``target`` (missing target: none)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return set()
        self.es.indices.refresh(index=target, ignore_unavailable=True, allow_no_indices=True)
        found: set[str] = set()
        for start in range(0, len(unique), self.chunk):
            part = unique[start : start + self.chunk]
            response = self.es.search(
                index=target,
                query={"ids": {"values": part}},
                size=len(part),
                source=False,
                track_total_hits=False,
                ignore_unavailable=True,
                allow_no_indices=True,
                filter_path="hits.hits._id",
            )
            self.lookups += 1
            found.update(_hit_ids(response.body))
        return found


def _hit_ids(body: Any) -> list[str]:
    hits = body.get("hits", {}).get("hits", []) if isinstance(body, dict) else []
    return [str(hit["_id"]) for hit in hits if "_id" in hit]
