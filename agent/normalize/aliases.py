"""Where each meaning lives in an input record: services and versions spell fields differently.

The tables below are the single source of the aliases; the pydantic input model
is built from them too. The first alias present wins; ``null`` and ``""`` count as absent, so
a service that writes ``"userId": null`` next to ``"user": {"id": ...}`` still names its user.
A ``user``, ``actor``, ``flow``, ``tenant`` or ``target`` given as a plain string is the
reference itself (an email when it holds an ``@``, otherwise an id).
"""

from __future__ import annotations

from typing import Any, Final

# A path is a tuple of keys; nested objects are walked, a string at the object's place is
# accepted as the reference for the listed "id"/"email" leaf (see _nested).
Path = tuple[str, ...]

ID: tuple[Path, ...] = (("id",), ("_id",), ("eventId",), ("auditId",))
TIME: tuple[Path, ...] = (("created",), ("createdAt",), ("timestamp",), ("time",), ("@timestamp",))
ACTION: tuple[Path, ...] = (("action",), ("event",), ("eventName",))
TYPE: tuple[Path, ...] = (("type",),)
USER_ID: tuple[Path, ...] = (("userId",), ("user", "id"), ("actor", "id"))
USER_EMAIL: tuple[Path, ...] = (
    ("email",),
    ("user", "email"),
    ("actor", "email"),
    ("userEmail",),
)
USER_NAME: tuple[Path, ...] = (("user", "name"), ("actor", "name"), ("userName",))
TARGET_ID: tuple[Path, ...] = (("target", "id"), ("targetUser", "id"), ("targetUserId",))
TARGET_EMAIL: tuple[Path, ...] = (
    ("target", "email"),
    ("targetUser", "email"),
    ("targetEmail",),
    ("targetUserEmail",),
)
TARGET_NAME: tuple[Path, ...] = (("target", "name"), ("targetUser", "name"))
FLOW_ID: tuple[Path, ...] = (("flowId",), ("flow", "id"))
ENTITY_TYPE: tuple[Path, ...] = (("entity", "type"), ("entityType",))
ENTITY_ID: tuple[Path, ...] = (("entity", "id"), ("entityId",))
ENTITY_NAME: tuple[Path, ...] = (("entity", "name"), ("entityName",))
TENANT_ID: tuple[Path, ...] = (("tenantId",), ("tenant", "id"))
IP: tuple[Path, ...] = (("ip",), ("clientIp",), ("remoteAddress",))
USER_AGENT: tuple[Path, ...] = (("userAgent",), ("headers", "user-agent"))
BEFORE: tuple[Path, ...] = (("before",),)
AFTER: tuple[Path, ...] = (("after",),)
DIFF: tuple[Path, ...] = (("diff",), ("changes",))
OUTCOME: tuple[Path, ...] = (("outcome",), ("status",))
DATA: tuple[Path, ...] = (("data",), ("details",), ("meta",))
REASON: tuple[Path, ...] = (("reason",),)

# Keys that only an audit record carries: an object with one of them but no action is a
# broken audit record (rejected), an object with none of them is a service log line (skipped).
AUDIT_HINTS = frozenset(
    {"auditId", "eventId", "created", "createdAt", "before", "after", "diff", "changes"}
    | {"entity", "entityType", "entityId"}
)
REFERENCE_HOLDERS: Final = frozenset({"user", "actor", "flow", "tenant", "target", "targetUser"})


def dotted(path: Path) -> str:
    return ".".join(path)


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _inside(holder: Any, holder_key: str, leaf: str) -> Any:
    """``leaf`` of an object under ``holder_key``, or the holder itself as a reference."""
    if type(holder) is dict:
        if leaf == "user-agent":  # HTTP header names are case-insensitive
            for key, value in holder.items():
                if isinstance(key, str) and key.lower() == "user-agent":
                    return value
            return None
        return holder.get(leaf)
    if (
        type(holder) is str
        and holder_key in REFERENCE_HOLDERS
        and leaf in ("id", "email")
        and holder.strip()
        and ("@" in holder) == (leaf == "email")
    ):
        return holder
    return None


def _nested(record: dict[str, Any], path: Path) -> Any:
    return _inside(record.get(path[0]), path[0], path[1])


def first(record: dict[str, Any], paths: tuple[Path, ...]) -> tuple[Path | None, Any]:
    """The first alias present and its value; ``(None, None)`` when none is."""
    for path in paths:
        value = record.get(path[0]) if len(path) == 1 else _nested(record, path)
        if _present(value):
            return path, value
    return None, None


def value_of(record: dict[str, Any], paths: tuple[Path, ...]) -> Any:
    return first(record, paths)[1]


# Every meaning the pipeline reads, in the order of the list ``resolve`` returns.
MEANINGS: tuple[tuple[str, tuple[Path, ...]], ...] = (
    ("id", ID),
    ("time", TIME),
    ("action", ACTION),
    ("type", TYPE),
    ("user_id", USER_ID),
    ("user_email", USER_EMAIL),
    ("user_name", USER_NAME),
    ("target_id", TARGET_ID),
    ("target_email", TARGET_EMAIL),
    ("target_name", TARGET_NAME),
    ("flow_id", FLOW_ID),
    ("entity_type", ENTITY_TYPE),
    ("entity_id", ENTITY_ID),
    ("entity_name", ENTITY_NAME),
    ("tenant_id", TENANT_ID),
    ("ip", IP),
    ("user_agent", USER_AGENT),
    ("diff", DIFF),
    ("outcome", OUTCOME),
    ("data", DATA),
    ("reason", REASON),
)
# Indices into that list. Final constants: a compiled build inlines them.
M_ID: Final = 0
M_TIME: Final = 1
M_ACTION: Final = 2
M_TYPE: Final = 3
M_USER_ID: Final = 4
M_USER_EMAIL: Final = 5
M_USER_NAME: Final = 6
M_TARGET_ID: Final = 7
M_TARGET_EMAIL: Final = 8
M_TARGET_NAME: Final = 9
M_FLOW_ID: Final = 10
M_ENTITY_TYPE: Final = 11
M_ENTITY_ID: Final = 12
M_ENTITY_NAME: Final = 13
M_TENANT_ID: Final = 14
M_IP: Final = 15
M_USER_AGENT: Final = 16
M_DIFF: Final = 17
M_OUTCOME: Final = 18
M_DATA: Final = 19
M_REASON: Final = 20
_COUNT: Final = len(MEANINGS)


def _by_key() -> dict[str, tuple[tuple[int, int, str | None], ...]]:
    table: dict[str, list[tuple[int, int, str | None]]] = {}
    for meaning, (_name, paths) in enumerate(MEANINGS):
        for rank, path in enumerate(paths):
            leaf = path[1] if len(path) > 1 else None
            table.setdefault(path[0], []).append((meaning, rank, leaf))
    return {key: tuple(entries) for key, entries in table.items()}


_BY_KEY: Final = _by_key()
# Keys that are one meaning's alias and nothing else (most of them): resolved without the
# general loop over _BY_KEY's entries.
_SIMPLE: Final = {
    key: (meaning, rank)
    for key, ((meaning, rank, leaf), *others) in _BY_KEY.items()
    if leaf is None and not others
}


_UNSET: Final = 1 << 30


def resolve(record: dict[str, Any]) -> tuple[list[Any], list[int]]:
    """Every meaning's value, and the rank of the alias it came from (``_UNSET`` if none).

    What ``first`` does per meaning, in one pass over the record's keys: a record has a dozen
    keys, the alias tables five times as many. ``alias(meaning, rank)`` names the field.
    """
    values: list[Any] = [None] * _COUNT
    ranks = [_UNSET] * _COUNT
    simple, by_key = _SIMPLE, _BY_KEY
    for key, value in record.items():
        # A decoded value equals "" only when it is that string: no comparison of every
        # object and array with "".
        if value is None or (type(value) is str and not value):
            continue
        only = simple.get(key)
        if only is not None:
            meaning, rank = only
            if rank < ranks[meaning]:
                values[meaning] = value
                ranks[meaning] = rank
            continue
        entries = by_key.get(key)
        if entries is None:
            continue
        for meaning, rank, leaf in entries:
            if rank >= ranks[meaning]:
                continue
            found = value if leaf is None else _inside(value, key, leaf)
            if found is None or (type(found) is str and not found):
                continue
            values[meaning] = found
            ranks[meaning] = rank
    return values, ranks


def alias(meaning: int, rank: int) -> str:
    """The dotted input name of a resolved value, e.g. ``createdAt`` or ``user.email``."""
    return dotted(MEANINGS[meaning][1][rank])


def unwrap(line: dict[str, Any], envelope_key: str) -> tuple[dict[str, Any], str, Any]:
    """The audit record proper, where it sat, and the envelope's time as a fallback.

    A pino/bunyan line carries the record under ``envelope_key``; a bare record is itself.
    The middle item, ``"audit."`` or ``""``, prefixes field names in rejection reasons.
    """
    inner = line.get(envelope_key)
    if type(inner) is dict:
        return inner, envelope_key + ".", line.get("time")
    return line, "", None


def looks_like_audit(record: dict[str, Any]) -> bool:
    return not AUDIT_HINTS.isdisjoint(record)
