"""Identifiers an event mentions, gathered into ``appmixer.related.id`` so search finds them.

A clone event names its source flow only inside ``data`` (``{"sourceFlowId": ...}``), and
``data``, ``before`` and ``after`` are stored but not indexed: without this field, searching
the source flow's id would miss the clone. The field holds, in order of first appearance and
without repeats: the event's flow and entity ids, then every identifier-like value found in
the (already redacted) ``data``, ``before`` and ``after``.

Identifier-like, decided without regular expressions (this runs for every event):

* a string or integer under a key that names an id: ``id``, ``*Id``, ``*ID``, ``*_id``,
  ``*-id`` (``sourceFlowId``, ``templateId``, ``x-request-id``), or a list of them under the
  plural (``flowIds``, ``user_ids``);
* whatever the key, a string shaped like a MongoDB ObjectId (24 hex digits) or a UUID.

Never collected: a value redaction touched (it contains ``[REDACTED]``), text with
whitespace (a sentence is not an id), values longer than a keyword field keeps. The walk
stops at ``MAX_DEPTH`` levels and the list at ``MAX_IDS`` values, so one huge state cannot
make an event slow or its document large.
"""

from __future__ import annotations

from typing import Any, Final

from agent.normalize.redact import REDACTED

MAX_IDS: Final = 64
MAX_DEPTH: Final = 12
MAX_CHARS: Final = 1024
_HEX: Final = "0123456789abcdefABCDEF"
_HEX_OR_DASH: Final = _HEX + "-"
_SINGULAR: Final = ("Id", "ID", "_id", "-id", "_ID", "-ID")
_PLURAL: Final = ("Ids", "IDs", "_ids", "-ids", "_IDS", "-IDS")
_MEMORY: Final = 4096

# Key -> 0 plain, 1 names one id, 2 names a list of ids. Keys repeat across events (the
# same services write the same shapes), so each is judged once; bounded, cleared when full.
_key_kinds: dict[str, int] = {}


def _judge(key: Any) -> int:
    """The kind of a key not judged before (and remember it)."""
    kind = 0
    if type(key) is str:
        if key in ("id", "ID", "_id", "uuid", "guid") or key.endswith(_SINGULAR):
            kind = 1
        elif key in ("ids", "IDs") or key.endswith(_PLURAL):
            kind = 2
    if len(_key_kinds) >= _MEMORY:
        _key_kinds.clear()
    _key_kinds[key] = kind
    return kind


def shaped_like_id(value: str) -> bool:
    """A MongoDB ObjectId (24 hex digits) or a UUID (8-4-4-4-12 hex digits)."""
    # ``not text.strip(chars)``: every character is one of ``chars``, tested in C without
    # a set lookup per character.
    size = len(value)
    if size == 24:
        return not value.strip(_HEX)
    if size == 36:
        return (
            value[8] == value[13] == value[18] == value[23] == "-"
            and not value.strip(_HEX_OR_DASH)
            and value.count("-") == 4
        )
    return False


def _usable(value: Any) -> str | None:
    """The value as an id, or None when it cannot be one."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is not str:
        return None
    text: str = value
    if not text or len(text) > MAX_CHARS or REDACTED in text or not text.isprintable():
        return None
    return None if " " in text else text


class _Collector:
    __slots__ = ("found", "seen")

    def __init__(self, first: list[str]) -> None:
        self.found = first
        self.seen = set(first)

    def add(self, value: str) -> None:
        if value not in self.seen and len(self.found) < MAX_IDS:
            self.seen.add(value)
            self.found.append(value)

    def visit(self, value: Any, depth: int) -> None:
        """Walk one container."""
        if type(value) is list:
            self._items(value, depth)
        else:
            self._object(value, depth)

    def _object(self, value: dict[str, Any], depth: int) -> None:
        """The entries of an object; hot, so the common cases are inlined (and the type
        declared, so the compiled build iterates the dict directly)."""
        if depth >= MAX_DEPTH:
            return
        kinds = _key_kinds
        for key, inner in value.items():
            inner_kind = type(inner)
            if inner_kind is dict:
                self._object(inner, depth + 1)
                continue
            kind = kinds.get(key)
            if kind is None:
                kind = _judge(key)
            if inner_kind is list:
                if kind == 2:
                    self._ids(inner)
                else:
                    self._items(inner, depth + 1)
            elif kind == 1:
                usable = _usable(inner)
                if usable is not None:
                    self.add(usable)
            elif inner_kind is str and (len(inner) == 24 or len(inner) == 36):
                self._shaped(inner)

    def _items(self, items: list[Any], depth: int) -> None:
        """The items of a list that is not a list of ids."""
        if depth >= MAX_DEPTH:
            return
        for item in items:
            item_kind = type(item)
            if item_kind is dict:
                self._object(item, depth + 1)
            elif item_kind is list:
                self._items(item, depth + 1)
            elif item_kind is str and (len(item) == 24 or len(item) == 36):
                self._shaped(item)

    def _ids(self, items: list[Any]) -> None:
        """A list under a key naming ids: each usable item is one."""
        for item in items:
            usable = _usable(item)
            if usable is not None:
                self.add(usable)

    def _shaped(self, text: str) -> None:
        if shaped_like_id(text):
            self.add(text)


def related_ids(first: list[str], states: tuple[Any, ...]) -> list[str]:
    """``first`` (the event's own references) then the ids inside the states, each once.

    ``states`` are the redacted ``before``, ``after`` and ``data`` (absent ones may be any
    marker that is not a container or a string)."""
    collector = _Collector(first)
    for state in states:
        kind = type(state)
        if kind is dict or kind is list:
            collector.visit(state, 0)
        elif kind is str and shaped_like_id(state):
            collector.add(state)
    return collector.found
