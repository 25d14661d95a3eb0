"""Diffs that a service computed itself: used when the record carries no before/after.

Accepted shapes, per entry of a list:

* ``{"path", "old", "new"}`` (``oldValue``/``newValue`` too): the op is ``add`` without an
  old value, ``remove`` without a new one, ``replace`` otherwise (an explicit ``op`` wins);
* RFC 6902 operations ``{"op", "path", "value", "from"}``: ``add``/``replace`` carry the new
  value; ``remove`` has none; ``move`` becomes a ``remove`` at ``from`` and an ``add`` at
  ``path``; ``copy`` an ``add`` at ``path``; ``test`` changes nothing and is left out.

and an object mapping paths to ``{"old", "new"}``. A path may be a JSON Pointer, a dotted
path (``rules.3.role``) or an array of segments; it is stored as a JSON Pointer. Entries
without a usable path are left out: there is nothing to show for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from agent.normalize.diff import MISSING, Change, Diff, escape, unescape

_RFC_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_OPS = frozenset({"add", "remove", "replace"})


def pointer(path: Any) -> str | None:
    """The JSON Pointer form of a path given as pointer, dotted text or segments."""
    if isinstance(path, str):
        if path == "" or path.startswith("/"):
            return path
        return "/" + "/".join(escape(part) for part in path.split("."))
    if isinstance(path, list) and path:
        parts = []
        for part in path:
            if isinstance(part, bool) or not isinstance(part, str | int):
                return None
            parts.append(escape(str(part)))
        return "/" + "/".join(parts)
    return None


def _field(entry: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in entry:
            return entry[name]
    return MISSING


def _changes(entry: Any) -> Iterator[Change]:
    if not isinstance(entry, dict):
        return
    path = pointer(entry.get("path"))
    op = entry.get("op")
    if path is None:
        return
    if op in _RFC_OPS and ("value" in entry or "from" in entry or op == "remove"):
        if op in ("add", "replace"):
            old = _field(entry, "old", "oldValue") if op == "replace" else MISSING
            yield Change(path, op, old, entry.get("value"))
        elif op == "remove":
            yield Change(path, "remove", _field(entry, "old", "oldValue"))
        elif op in ("move", "copy"):
            source = pointer(entry.get("from"))
            if op == "move" and source is not None:
                yield Change(source, "remove")
            yield Change(path, "add")
        return
    old = _field(entry, "old", "oldValue")
    new = _field(entry, "new", "newValue")
    if op not in _OPS:
        op = "add" if old is MISSING and new is not MISSING else "replace"
        if new is MISSING and old is not MISSING:
            op = "remove"
    yield Change(path, op, MISSING if op == "add" else old, MISSING if op == "remove" else new)


def _entries(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value
    elif isinstance(value, dict):
        for path, entry in value.items():
            if isinstance(entry, dict):
                yield {**entry, "path": path}


def from_precomputed(value: Any, max_changes: int, secret_key: Callable[[str], bool]) -> Diff:
    """The service's own diff in this module's vocabulary, capped like a computed one."""
    result = Diff()
    for entry in _entries(value):
        for change in _changes(entry):
            result.count += 1
            if len(result.changes) >= max_changes:
                result.truncated = True
                continue
            change.secret = any(secret_key(unescape(token)) for token in change.path.split("/")[1:])
            result.changes.append(change)
    return result
