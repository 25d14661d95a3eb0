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
from typing import Any

from elasticsearch import Elasticsearch


class IncompleteCheck(Exception):
    """Not every shard answered: absence of an id proves nothing, so the check is retried."""


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

    def existing(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (target, _id) pairs among ``pairs`` already indexed.

        Raises on Elasticsearch errors, and :class:`IncompleteCheck` when a shard failed.
        """
        by_target: dict[str, list[str]] = defaultdict(list)
        for target, doc_id in pairs:
            by_target[target].append(doc_id)
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
                filter_path="hits.hits._id,_shards.failed",
            )
            self.lookups += 1
            failed = response.body.get("_shards", {}).get("failed", 0)
            if failed:  # a shard that did not answer may hold the very ids we look for
                raise IncompleteCheck(f"{failed} shard(s) of {target} did not answer")
            found.update(_hit_ids(response.body))
        return found


def _hit_ids(body: Any) -> list[str]:
    hits = body.get("hits", {}).get("hits", []) if isinstance(body, dict) else []
    return [str(hit["_id"]) for hit in hits if "_id" in hit]


class ReplayWindow:
    """Which lines may already be in the index: the only ones worth a lookup before writing.

    Built from the registry at start: per file content (the content id, shared by a file,
    its renamed self and its copies), lines before the highest ``sent`` of an entry whose
    ``sent`` exceeds its ``acked`` were possibly sent by the previous run. While running, a
    line is also covered when *another* file identity with the same content was already sent
    past its offset (a ``copytruncate`` copy read again from its original's checkpoint).
    Content ids and keys are plain strings given by the caller, so this stays independent
    of the file layer (which alone knows how a key is made).
    """

    def __init__(self, positions: Iterable[tuple[str, str, int, int]] = ()) -> None:
        """``positions``: (content id, key, acked, sent) per registry entry."""
        self._startup: dict[str, int] = {}
        for content, _key, acked, sent in positions:
            if sent > acked:
                self._startup[content] = max(self._startup.get(content, 0), sent)
        self._sent: dict[str, dict[str, int]] = defaultdict(dict)  # content -> key -> end
        self._shared = False  # some content was sent under two file identities (a copy)

    def __bool__(self) -> bool:
        return bool(self._startup) or self._shared

    def covers(self, content: str, key: str, offset: int) -> bool:
        """True when the line of ``key`` (content ``content``) at ``offset`` may already be
        in the index."""
        if not self:
            return False  # the common case, on the hot path: no window at all
        if offset < self._startup.get(content, 0):
            return True
        others = self._sent.get(content)
        if not others:
            return False
        return any(end > offset for other, end in others.items() if other != key)

    def note_sent(self, content: str, key: str, end: int) -> None:
        """Record that lines of ``key`` up to ``end`` are being sent by this run."""
        ends = self._sent[content]
        if end > ends.get(key, 0):
            ends[key] = end
            self._shared = self._shared or len(ends) > 1
