"""The before/after diff, as JSON Pointer changes that replay as a JSON Patch.

Rules:

* Paths are JSON Pointers (RFC 6901): ``~`` is written ``~0`` and ``/`` is ``~1``; the root
  is ``""``.
* Ops are ``add``, ``remove`` and ``replace``; a change of JSON type is a ``replace``.
* Arrays are compared by position, or by ``id`` when every element of both arrays is an
  object with a unique scalar ``id`` and the elements present in both keep their relative
  order (otherwise by position; a reordering is not a move in this vocabulary). A removed
  element's path carries its index in the *old* array, an added or changed element's path
  its index in the *new* array. Removals come first, highest index first, then additions and
  changes in ascending order: applied in the order given, the changes form an RFC 6902 patch
  that turns ``before`` into ``after`` (``add`` on an array inserts), unless a cap was hit.
* Caps: a container at ``max_depth`` levels is compared as a whole and reported as one
  ``replace`` at that path; only the first ``max_changes`` changes are kept, while ``count``
  still tells how many there were. Either cap sets ``truncated``.

Depth is bounded: the walk recurses once per level down to ``max_depth`` (at most 256) and
compares anything deeper without recursion, so a 300- or 1000-level document cannot exhaust
Python's recursion limit. Values are raw here; redaction and rendering happen when the
document is assembled, and ``secret`` marks changes under a secret-looking key (or the
``value`` of a secret-looking name/value pair) on the way down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
MAX_DEPTH: Final = 256
_NUMBER: Final = "n"
_KIND: Final[dict[type, str]] = {
    dict: "o",
    list: "a",
    str: "s",
    bool: "b",
    int: _NUMBER,
    float: _NUMBER,
    type(None): "z",
}


@dataclass(slots=True)
class Change:
    """One difference; ``old``/``new`` are MISSING where the op has none (add/remove)."""

    path: str
    op: str
    old: Any = MISSING
    new: Any = MISSING
    secret: bool = False

    def __init__(
        self, path: str, op: str, old: Any = MISSING, new: Any = MISSING, secret: bool = False
    ) -> None:
        # Written out: the generated one runs as Python code even in the compiled build.
        self.path = path
        self.op = op
        self.old = old
        self.new = new
        self.secret = secret


@dataclass(slots=True)
class Diff:
    """The (capped) changes, how many there were, and whether a cap cut anything."""

    changes: list[Change] = field(default_factory=list)
    count: int = 0
    truncated: bool = False
    computed: bool = False  # from the states: every old/new value is a part of one of them

    def __init__(
        self,
        changes: list[Change] | None = None,
        count: int = 0,
        truncated: bool = False,
        computed: bool = False,
    ) -> None:
        # Written out: the generated one runs as Python code even in the compiled build.
        self.changes = [] if changes is None else changes
        self.count = count
        self.truncated = truncated
        self.computed = computed


def escape(key: str) -> str:
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def unescape(token: str) -> str:
    if "~" in token:
        return token.replace("~1", "/").replace("~0", "~")
    return token


def kind(value: Any) -> str:
    return _KIND.get(type(value), "?")


def deep_equal(left: Any, right: Any) -> bool:
    """JSON equality without recursion; ``true`` is not ``1``."""
    stack = [(left, right)]
    while stack:
        a, b = stack.pop()
        ka = _KIND.get(type(a), "?")
        if ka != _KIND.get(type(b), "?"):
            return False
        if ka == "o":
            if a.keys() != b.keys():
                return False
            stack.extend((a[key], b[key]) for key in a)
        elif ka == "a":
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
        elif a != b:
            return False
    return True


def _by_id(old: list[Any], new: list[Any]) -> tuple[list[Any], list[Any]] | None:
    """The id lists when both arrays qualify for matching by ``id``, else None."""
    ids: list[list[Any]] = []
    for array in (old, new):
        seen = []
        for element in array:
            if type(element) is not dict:
                return None
            ident = element.get("id")
            if type(ident) not in (str, int):
                return None
            seen.append(ident)
        if len(set(seen)) != len(seen):
            return None
        ids.append(seen)
    old_ids, new_ids = ids
    if not old_ids or not new_ids:
        return None
    old_set, new_set = set(old_ids), set(new_ids)
    if [i for i in old_ids if i in new_set] != [i for i in new_ids if i in old_set]:
        return None
    return old_ids, new_ids


def _same(left: Any, right: Any) -> bool:
    """Equal containers, found at C speed: Python's == first (it cannot tell true from 1 or
    see key order), then the serialized bytes (which can). Either may refuse a very deep
    value; then the caller walks it."""
    try:
        return bool(left == right) and orjson.dumps(left) == orjson.dumps(right)
    except (RecursionError, orjson.JSONEncodeError):
        return False


class Differ:
    """The diff engine with its caps and the secret-key test, configured once.

    The walk recurses once per container level and stops at ``max_depth`` (at most 256),
    so it stays far inside Python's recursion limit whatever the input's nesting.
    """

    def __init__(
        self,
        max_depth: int,
        max_changes: int,
        secret_key: Callable[[str], bool],
        secret_pair: Callable[[dict[str, Any]], bool] = lambda _value: False,
    ) -> None:
        if not 1 <= max_depth <= MAX_DEPTH:
            raise ValueError(f"diff_max_depth must be between 1 and {MAX_DEPTH}")
        self.max_depth = max_depth
        self.max_changes = max_changes
        self.secret_key = secret_key
        self.secret_pair = secret_pair

    def diff(self, before: Any, after: Any) -> Diff:
        """Changes from ``before`` to ``after``; either may be MISSING (a create or delete)."""
        walk = _Walk(self)
        walk.result.computed = True
        if before is MISSING and after is MISSING:
            return walk.result
        if before is MISSING:
            if type(after) is not dict:
                walk.emit(Change("", "add", new=after))
                return walk.result
            before = {}
        if after is MISSING:
            if type(before) is not dict:
                walk.emit(Change("", "remove", old=before))
                return walk.result
            after = {}
        walk.child("", before, after, 0, False)
        return walk.result


class _Walk:
    """One diff in progress: the caps, and the changes found so far."""

    __slots__ = ("changes", "limit", "max_depth", "result", "secret_key", "secret_pair")

    def __init__(self, differ: Differ) -> None:
        self.result = Diff()
        self.changes = self.result.changes
        self.limit = differ.max_changes
        self.max_depth = differ.max_depth
        self.secret_key = differ.secret_key
        self.secret_pair = differ.secret_pair

    def emit(self, change: Change) -> None:
        self.result.count += 1
        if len(self.changes) < self.limit:
            self.changes.append(change)
        else:
            self.result.truncated = True

    def hidden(self, key: str, secret: bool, pair: bool) -> bool:
        """Whether changes under ``key`` are flagged secret (asked only where one is found)."""
        return secret or self.secret_key(key) or (pair and key == "value")

    def child(self, path: str, old: Any, new: Any, depth: int, secret: bool) -> None:
        """Compare two values found at ``path``."""
        kind_old = type(old)
        if kind_old is not type(new) and _KIND.get(kind_old) != _KIND.get(type(new), "?"):
            self.emit(Change(path, "replace", old, new, secret))
        elif kind_old is dict or kind_old is list:
            if not _same(old, new):
                self.descend(path, old, new, depth, secret)
        elif old != new:
            self.emit(Change(path, "replace", old, new, secret))

    def descend(self, path: str, old: Any, new: Any, depth: int, secret: bool) -> None:
        """Two containers of one type, known to differ."""
        if depth >= self.max_depth:  # compared whole: one replace at the cap
            if not deep_equal(old, new):
                self.result.truncated = True
                self.emit(Change(path, "replace", old, new, secret))
        elif type(old) is dict:
            self.walk_object(path, old, new, depth + 1, secret)
        else:
            self.walk_array(path, old, new, depth + 1, secret)

    def walk_object(
        self, path: str, old: dict[str, Any], new: dict[str, Any], depth: int, secret: bool
    ) -> None:
        pair = ("value" in old and self.secret_pair(old)) or (
            "value" in new and self.secret_pair(new)
        )
        for key, value in old.items():
            if key not in new:
                hidden = self.hidden(key, secret, pair)
                self.emit(Change(f"{path}/{escape(key)}", "remove", value, MISSING, hidden))
                continue
            other = new[key]
            if other is value:
                continue
            # Most of a state is unchanged: for equal values of one type (not true and 1),
            # no path is built and no key looked up.
            kind = type(value)
            if kind is type(other):
                if kind is dict or kind is list:
                    if not _same(value, other):
                        hidden = self.hidden(key, secret, pair)
                        self.descend(f"{path}/{escape(key)}", value, other, depth, hidden)
                    continue
                if value == other:
                    continue
            self.child(f"{path}/{escape(key)}", value, other, depth, self.hidden(key, secret, pair))
        if not new.keys() <= old.keys():
            for key, value in new.items():
                if key not in old:
                    hidden = self.hidden(key, secret, pair)
                    self.emit(Change(f"{path}/{escape(key)}", "add", MISSING, value, hidden))

    def walk_array(
        self, path: str, old: list[Any], new: list[Any], depth: int, secret: bool
    ) -> None:
        if old and new and type(old[0]) is dict and self.walk_ids(path, old, new, depth, secret):
            return
        common = min(len(old), len(new))
        for index in range(common):
            value, other = old[index], new[index]
            if other is value:
                continue
            kind = type(value)
            if kind is type(other):
                if kind is dict or kind is list:
                    if not _same(value, other):
                        self.descend(f"{path}/{index}", value, other, depth, secret)
                    continue
                if value == other:
                    continue
            self.child(f"{path}/{index}", value, other, depth, secret)
        for index in range(common, len(new)):
            self.emit(Change(f"{path}/{index}", "add", MISSING, new[index], secret))
        for index in range(len(old) - 1, common - 1, -1):
            self.emit(Change(f"{path}/{index}", "remove", old[index], MISSING, secret))

    def walk_ids(self, path: str, old: list[Any], new: list[Any], depth: int, secret: bool) -> bool:
        """Arrays matched by ``id``; False (nothing done) when they do not qualify."""
        matched = _by_id(old, new)
        if matched is None:
            return False
        old_ids, new_ids = matched
        new_set = set(new_ids)
        position = {ident: index for index, ident in enumerate(old_ids)}
        for index in range(len(old) - 1, -1, -1):
            if old_ids[index] not in new_set:
                self.emit(Change(f"{path}/{index}", "remove", old[index], MISSING, secret))
        for index, element in enumerate(new):
            at = position.get(new_ids[index])
            if at is None:
                self.emit(Change(f"{path}/{index}", "add", MISSING, element, secret))
            else:
                self.child(f"{path}/{index}", old[at], element, depth, secret)
        return True
