"""Bulk request bodies: documents encoded once where the line is read, joined when sent.

Buffered events are kept as bytes, not dicts: a nested ECS document costs several times its
JSON size as Python objects, and the buffer's byte bound should mean what it says. The one
field not known when the line is read is ``event.ingested``, the ship time, which must be
that of the request that delivers the document (a retry an hour later is ingested then).
So each document is encoded with a placeholder in that field, a JSON string no input can
produce (it holds a random token of this process), and the body of a whole request is
joined once and gets the ship time with a single ``replace`` over it: no per-document
rendering, no intermediate copies.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, Protocol

import orjson

from common.value import Value

__all__ = ["EncodedEvent", "Parcel", "bulk_body"]

# \u0001 cannot come from a document unescaped, and the token is unknown outside the process.
_PLACEHOLDER: Final = f"\x01ingested-{secrets.token_hex(12)}"
_PLACEHOLDER_JSON: Final = orjson.dumps(_PLACEHOLDER)


class EncodedEvent:
    """A document serialized ahead of time, with a placeholder for ``event.ingested``."""

    __slots__ = ("data",)

    def __init__(self, document: Mapping[str, Any]) -> None:
        # A right-sized copy: orjson's result keeps its generous working allocation (about
        # 16 KiB for a 2 KiB document), which for a buffer of thousands is most of its memory.
        self.data: bytes = bytes(memoryview(_encoded(document)))

    def __len__(self) -> int:
        return len(self.data)

    def render(self, ingested: bytes) -> bytes:
        """The document with ``event.ingested`` set; ``ingested`` is a JSON string literal."""
        return self.data.replace(_PLACEHOLDER_JSON, ingested, 1)


class Parcel(Value):
    """One event and its change documents, encoded (made where the line is read, in
    this compiled module beside the encoding).

    A value, not frozen for speed (see :class:`chain.link.Head`); ``size`` is the encoded
    bytes plus each change document's action overhead, counted once for the buffer's bound.
    """

    __slots__ = ("changes", "event", "event_id", "size")
    FIELDS: ClassVar[tuple[str, ...]] = ("event_id", "event", "changes", "size")

    def __init__(
        self,
        event_id: str,
        event: EncodedEvent,
        changes: tuple[tuple[str, EncodedEvent], ...] = (),
        size: int = 0,
    ) -> None:
        self.event_id = event_id
        self.event = event
        self.changes = changes
        self.size = size

    @classmethod
    def of(
        cls,
        event_id: str,
        event: Mapping[str, Any],
        changes: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> Parcel:
        """Encode a normalized event and its change documents."""
        body = EncodedEvent(event)
        if not changes:
            return cls(event_id, body, (), len(body.data))
        encoded = tuple([(change_id, EncodedEvent(change)) for change_id, change in changes])
        size = len(body.data)
        for change_id, change_body in encoded:
            size += len(change_body.data) + len(change_id) + 60
        return cls(event_id, body, encoded, size)

    def __len__(self) -> int:
        return self.size


def _encoded(document: Mapping[str, Any]) -> bytes:
    """The document's JSON with the placeholder as ``event.ingested`` (last in ``event``).

    A plain dict with a dict ``event`` (every normalized document) gets the placeholder for
    the time of one ``dumps`` and is then put back as it was: the same bytes as encoding a
    copy, without copying the two dicts for every document.
    """
    inner = document.get("event")
    if type(document) is dict and type(inner) is dict:
        had = "ingested" in inner
        kept = inner.get("ingested")
        inner["ingested"] = _PLACEHOLDER
        try:
            return orjson.dumps(document)
        finally:
            if had:
                inner["ingested"] = kept
            else:
                del inner["ingested"]
    event = dict(inner) if inner else {}
    event["ingested"] = _PLACEHOLDER
    whole = dict(document)
    whole["event"] = event
    return orjson.dumps(whole)


class _Doc(Protocol):
    @property
    def target(self) -> str: ...

    @property
    def doc_id(self) -> str: ...

    @property
    def body(self) -> EncodedEvent: ...


def bulk_body(docs: Iterable[_Doc], ingested: bytes) -> bytes:
    """NDJSON: a ``create`` action with ``_id`` and the document, per document.

    ``ingested`` is the ship time as a JSON string literal (``b'"2026-...Z"'``).
    """
    actions: dict[str, bytes] = {}
    parts: list[bytes] = []
    append = parts.append
    dumps = orjson.dumps
    for doc in docs:
        action = actions.get(doc.target)
        if action is None:
            action = actions[doc.target] = b'{"create":{"_index":' + dumps(doc.target) + b',"_id":'
        append(action + dumps(doc.doc_id) + b"}}")
        append(doc.body.data)
    if not parts:
        return b""
    parts.append(b"")
    return b"\n".join(parts).replace(_PLACEHOLDER_JSON, ingested)
