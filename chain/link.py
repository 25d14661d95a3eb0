"""The hash chain of one source stream: canonical form, content digest, link, chain step.

Every event the agent indexes carries, under ``appmixer.chain``, the stream it belongs to,
its sequence number in that stream (1, 2, 3, ...) and the hash and id of the event before it;
``event.hash`` is the *link*: SHA-256 over those chain fields and the event's content digest.
So each stored event vouches for its predecessor, and the head of a stream (signed now and
then with a key Elasticsearch never sees, see ``checkpoint``) vouches for everything before it.

- **Content digest**: SHA-256 (hex) of the stored document without ``event.hash``,
  ``event.ingested`` (the ship time, different on every retry), ``log.file.path`` (a line
  read again after a rename carries the new name; ``log.offset`` and the stream stay) and
  ``appmixer.chain``, serialized with sorted keys and no whitespace (orjson's compact form).
  It is what the normalizer puts in ``event.hash`` before the chain step replaces it.
- **Link**: SHA-256 of the compact JSON array
  ``["appmixer-audit.chain/1", stream, seq, prev, prev_id, content]``; an array, so no value
  can run into the next.
- **Stream**: the events of one file content (its fingerprint, shared by the file, its
  renamed self and its copies) on one host, from one start offset (0, unless the chain state
  was lost, see ``Chains``). The chain values of a line are therefore a function of the file's
  bytes and the persisted chain state at the checkpoint: a line read again after a restart, a
  rotation or a copy gets the very same values, and its replay is a harmless 409.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Final

import orjson

from common.value import Value

VERSION_TAG: Final = "appmixer-audit.chain/1"
GENESIS: Final = "0" * 64  # the "hash" before the first event of a stream
FIELD: Final = "chain"  # appmixer.chain
_SORTED: Final = orjson.OPT_SORT_KEYS


def stream_id(host: str, content_id: str, start: int = 0) -> str:
    """The id of the chain of one file content on one host, begun at byte ``start``."""
    encoded = orjson.dumps([VERSION_TAG, host, content_id, start])
    return hashlib.sha256(encoded).hexdigest()[:32]


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes the content digest is taken over (see the module docstring)."""
    stripped = dict(document)
    event = stripped.get("event")
    if isinstance(event, dict):
        stripped["event"] = {k: v for k, v in event.items() if k not in ("hash", "ingested")}
    appmixer = stripped.get("appmixer")
    if isinstance(appmixer, dict) and FIELD in appmixer:
        stripped["appmixer"] = {k: v for k, v in appmixer.items() if k != FIELD}
    log = stripped.get("log")
    if isinstance(log, dict) and "file" in log:
        file = log["file"]
        rest = {k: v for k, v in file.items() if k != "path"} if isinstance(file, dict) else file
        stripped["log"] = {k: v for k, v in log.items() if k != "file"}
        if rest:
            stripped["log"]["file"] = rest
    return orjson.dumps(stripped, option=_SORTED)


def content_digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(document)).hexdigest()


def link(stream: str, seq: int, prev: str, prev_id: str | None, content: str) -> str:
    """``event.hash`` of the event at ``seq`` whose predecessor has hash ``prev``."""
    encoded = orjson.dumps([VERSION_TAG, stream, seq, prev, prev_id, content])
    return hashlib.sha256(encoded).hexdigest()


class Head(Value):
    """A stream after its event ``seq`` (0 and :data:`GENESIS` before the first event).

    A value, never changed once made, yet neither frozen nor a dataclass: the per-line path
    makes several such values for every event, and a plain class's own ``__init__`` is the
    cheapest to call (:mod:`common.value`).
    """

    __slots__ = ("event_id", "hash", "seq", "stream")
    FIELDS: ClassVar[tuple[str, ...]] = ("stream", "seq", "hash", "event_id")

    def __init__(self, stream: str, seq: int, hash: str, event_id: str | None = None) -> None:
        self.stream = stream
        self.seq = seq
        self.hash = hash
        self.event_id = event_id

    @classmethod
    def genesis(cls, stream: str) -> Head:
        return cls(stream, 0, GENESIS, None)

    def as_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "seq": self.seq, "hash": self.hash, "id": self.event_id}

    @classmethod
    def from_dict(cls, data: Any) -> Head:
        """Inverse of :meth:`as_dict`; ``ValueError`` for anything else."""
        if not isinstance(data, dict):
            raise ValueError("chain state is not an object")
        stream, seq, digest, event_id = (data.get(k) for k in ("stream", "seq", "hash", "id"))
        if not isinstance(stream, str) or not stream:
            raise ValueError("chain state has no stream")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"chain state seq {seq!r} is invalid")
        if not isinstance(digest, str) or not _is_digest(digest):
            raise ValueError(f"chain state hash {digest!r} is invalid")
        if event_id is not None and not isinstance(event_id, str):
            raise ValueError("chain state id is not a string")
        return cls(stream, seq, digest, event_id)


def step(head: Head, event_id: str, document: dict[str, Any]) -> Head:
    """Chain one event document after ``head``: set ``appmixer.chain`` and ``event.hash``.

    ``event.hash`` must hold the content digest on entry (the normalizer puts it there);
    when it is absent the digest is computed here. Returns the stream's new head.
    """
    event = document["event"]
    content = event.get("hash")
    if not isinstance(content, str):
        content = content_digest(document)
    seq = head.seq + 1
    chain: dict[str, Any] = {"stream": head.stream, "seq": seq, "prev": head.hash}
    if head.event_id is not None:
        chain["prev_id"] = head.event_id
    document.setdefault("appmixer", {})[FIELD] = chain
    digest = link(head.stream, seq, head.hash, head.event_id, content)
    event["hash"] = digest
    return Head(head.stream, seq, digest, event_id)


def _is_digest(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
