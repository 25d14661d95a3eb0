"""Queries behind ``search`` and ``show``: the Audit Logs page's filters as Elasticsearch requests.

Building a request and shaping a response are pure functions (tested without a node); the
few functions at the bottom do the I/O. Full text goes over the fields the Audit Logs page names
("action descriptions and related identifiers"), each queried as its mapping type allows:
analysed text matches words, keywords (ids, emails, codes) match whole and exactly, so a
flow id never matches a different flow that shares a fragment with it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from elasticsearch import Elasticsearch, NotFoundError

from common.clock import utc_iso
from indexer.fields import KEYWORD_TYPES, TEXT_TYPES, field

# The seed's search bar: action descriptions and related identifiers (appmixer.related.id
# holds every id an event mentions, also those only inside its data or states).
FULL_TEXT_FIELDS = (
    "message",
    "event.action",
    "user.email",
    "user.name",
    "appmixer.flow.id",
    "appmixer.entity.id",
    "appmixer.entity.name",
    "appmixer.related.id",
    "event.id",
)
AUDIT_TYPES = ("create", "update", "delete", "access")
SORT: list[dict[str, Any]] = [
    {"@timestamp": {"order": "desc"}},
    {"event.id": {"order": "desc"}},
]
MAX_SIZE = 10_000
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Filters:
    """The Audit Logs page's filters; an empty one matches every event (its RESET)."""

    query: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] = ()
    user: str | None = None
    flow_id: str | None = None


def parse_time(text: str, *, now: datetime) -> datetime:
    """ISO 8601 (a zone-less time is UTC), ``now``, or an age like ``15m``, ``7d``, ``2w``."""
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.match(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        try:
            return now - timedelta(**{unit: amount})
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither ISO 8601 (2026-11-25T09:00:00Z) nor an age like 15m, 7d, 2w"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def words(query: str) -> list[str]:
    """The query's words; a double-quoted part is one phrase (quotes may be unbalanced)."""
    try:
        return [word for word in shlex.split(query) if word.strip()]
    except ValueError:
        return [word for word in query.replace('"', " ").split() if word]


def word_query(word: str) -> dict[str, Any]:
    """One word or phrase, matched in any full-text field, each as its type allows."""
    text_fields: list[str] = []
    should: list[dict[str, Any]] = []
    for name in FULL_TEXT_FIELDS:
        spec = field("events", name)
        if spec.type in TEXT_TYPES:
            text_fields.append(name)
        elif spec.type in KEYWORD_TYPES:
            should.append({"term": {name: {"value": word, "case_insensitive": True}}})
            text_sub = spec.subfield(TEXT_TYPES)
            if text_sub is not None:
                text_fields.append(text_sub)
        else:
            raise ValueError(f"{name} is a {spec.type}; full text needs text or keyword fields")
    if text_fields:
        should.insert(0, {"multi_match": {"query": word, "fields": text_fields, "type": "phrase"}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def build_query(filters: Filters) -> dict[str, Any]:
    """The bool query of the filters: every filter must hold, every word must be found."""
    clauses: list[dict[str, Any]] = []
    if filters.query:
        clauses.extend(word_query(word) for word in words(filters.query))
    if filters.since is not None or filters.until is not None:
        bounds: dict[str, str] = {}
        if filters.since is not None:
            bounds["gte"] = iso(filters.since)
        if filters.until is not None:
            bounds["lte"] = iso(filters.until)
        clauses.append({"range": {"@timestamp": bounds}})
    if filters.types:
        clauses.append({"terms": {"appmixer.audit.type": sorted(set(filters.types))}})
    if filters.user:
        user = filters.user.strip()
        either = [
            {"term": {"user.email": {"value": user, "case_insensitive": True}}},
            {"term": {"user.id": user}},
        ]
        clauses.append({"bool": {"should": either, "minimum_should_match": 1}})
    if filters.flow_id:
        clauses.append({"term": {"appmixer.flow.id": filters.flow_id.strip()}})
    if not clauses:
        return {"match_all": {}}
    return {"bool": {"filter": clauses}}


def build_search(
    filters: Filters, *, size: int, after: Sequence[Any] | None = None
) -> dict[str, Any]:
    """One page, newest first; one hit more than asked shows whether another page exists."""
    if not 1 <= size <= MAX_SIZE - 1:
        raise ValueError(f"size must be between 1 and {MAX_SIZE - 1}")
    body: dict[str, Any] = {
        "query": build_query(filters),
        "sort": SORT,
        "size": size + 1,
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = list(after)
    return body


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a Z, as the documents store time."""
    return utc_iso(moment)


def encode_cursor(sort_values: Sequence[Any]) -> str:
    """An opaque, shell-safe cursor from the last hit's sort values."""
    raw = json.dumps(list(sort_values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError(f"{cursor!r} is not a cursor printed by this command") from None
    if not isinstance(values, list) or len(values) != len(SORT):
        raise ValueError(f"{cursor!r} is not a cursor printed by this command")
    return values


@dataclass(frozen=True)
class Page:
    documents: list[dict[str, Any]]  # stored documents, event.id set from _id
    cursor: str | None  # where the next page starts; None on the last page


def shape_page(response: Mapping[str, Any], size: int) -> Page:
    """Documents of one page, and the cursor after it when more hits exist."""
    hits = response["hits"]["hits"]
    shown = hits[:size]
    cursor = encode_cursor(shown[-1]["sort"]) if len(hits) > size else None
    return Page([stored_document(hit) for hit in shown], cursor)


def stored_document(hit: Mapping[str, Any]) -> dict[str, Any]:
    """The document as stored, with its ``_id`` as ``event.id`` (they are the same by design)."""
    document = dict(hit.get("_source") or {})
    event = dict(document.get("event") or {})
    event["id"] = hit["_id"]
    document["event"] = event
    return document


def get_path(document: Mapping[str, Any], dotted: str) -> Any:
    """A value by dotted name, whether stored nested or with dots in its keys."""
    if dotted in document:
        return document[dotted]
    head, _, rest = dotted.partition(".")
    inner = document.get(head)
    if rest and isinstance(inner, Mapping):
        return get_path(inner, rest)
    return None


def changes_search(event_id: str, *, size: int, after: int | None = None) -> dict[str, Any]:
    """The change documents of one event, in diff order."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [{"term": {"event.id": event_id}}]}},
        "sort": [{"appmixer.change.index": {"order": "asc"}}],
        "size": size,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def event_query(event_id: str) -> dict[str, Any]:
    """The event by its ``_id`` (the event id), or by ``event.id`` for any older copy."""
    either = [{"ids": {"values": [event_id]}}, {"term": {"event.id": event_id}}]
    return {"bool": {"should": either, "minimum_should_match": 1}}


# ---------------------------------------------------------------------- rows

EVENT_HEADERS = ("Action", "User", "Created (UTC)", "Event ID")
DIFF_HEADERS = ("Path", "Change", "Old", "New")


def created_utc(value: Any) -> str:
    """A stored time as UTC ISO 8601 (whatever offset it was written with)."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        return iso(datetime.fromisoformat(value))
    except ValueError:
        return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    return str(value)


def event_row(document: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The seed's table row: Action, User (email, else name or id), Created, event id."""
    user = (
        get_path(document, "user.email")
        or get_path(document, "user.name")
        or get_path(document, "user.id")
    )
    return (
        _text(get_path(document, "message") or get_path(document, "event.action")),
        _text(user),
        created_utc(get_path(document, "@timestamp")),
        _text(get_path(document, "event.id")),
    )


# label, then the fields shown together on that line (the first one is the main value).
DETAILS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Event ID", ("event.id",)),
    ("Action", ("message", "event.action")),
    ("Type", ("appmixer.audit.type",)),
    ("Group", ("appmixer.audit.group",)),
    ("Outcome", ("event.outcome", "event.reason")),
    ("Created (UTC)", ("@timestamp",)),
    ("User", ("user.email", "user.name", "user.id")),
    ("Target user", ("user.target.email", "user.target.name", "user.target.id")),
    ("Flow", ("appmixer.flow.id",)),
    ("Entity", ("appmixer.entity.type", "appmixer.entity.id", "appmixer.entity.name")),
    ("Tenant", ("appmixer.tenant.id",)),
    ("Source IP", ("source.ip",)),
    ("User agent", ("user_agent.original",)),
    ("Changes", ("appmixer.audit.changes_count",)),
    ("In catalog", ("appmixer.audit.catalog",)),
    ("Category", ("event.category", "event.type")),
    ("Log", ("log.file.path", "log.offset", "host.name")),
    ("Hash", ("event.hash",)),
    ("Ingested", ("event.ingested",)),
)


def detail_rows(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Label and value of each detail the event has; absent ones are left out."""
    rows: list[tuple[str, str]] = []
    for label, names in DETAILS:
        values = [get_path(document, name) for name in names]
        if label == "Created (UTC)":
            values = [created_utc(values[0])]
        if label == "Changes" and get_path(document, "appmixer.audit.changes_truncated"):
            values.append("(truncated: the diff hit a cap)")
        if label == "In catalog" and values[0] is not False:
            continue
        shown = [_text(value) for value in values if value not in (None, "", [])]
        if shown:
            main, rest = shown[0], shown[1:]
            rows.append((label, f"{main} ({', '.join(rest)})" if rest else main))
    return rows


# Detail rows whose values the hash chain does not cover (a rename changes the path, every
# retry the ingest time): ``show`` marks them, so an edit there is not taken as vouched for.
UNCHAINED_DETAILS: Final = frozenset({"Log", "Ingested"})


def matching_changes(
    event: Mapping[str, Any], changes: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[int | None]]:
    """The change documents that repeat the event's own diff (``appmixer.audit.changes``,
    covered by the hash chain), and the index of each one that does not (forged, edited or
    stray: it is not shown as the event's diff)."""
    own = get_path(event, "appmixer.audit.changes")
    own = own if isinstance(own, list) else []
    good: list[Mapping[str, Any]] = []
    bad: list[int | None] = []
    seen: set[int] = set()
    for change in changes:
        body = get_path(change, "appmixer.change")
        found = body.get("index") if isinstance(body, Mapping) else None
        index = found if isinstance(found, int) and not isinstance(found, bool) else None
        rest = {k: v for k, v in body.items() if k != "index"} if isinstance(body, Mapping) else {}
        if index is not None and 0 <= index < len(own) and index not in seen and rest == own[index]:
            seen.add(index)
            good.append(change)
        else:
            bad.append(index)
    return good, bad


def diff_rows(changes: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """The diff table: path, change (add / remove / replace), old, new; in diff order."""
    return [
        (
            _text(get_path(change, "appmixer.change.path")),
            _text(get_path(change, "appmixer.change.op")),
            _text(get_path(change, "appmixer.change.old")),
            _text(get_path(change, "appmixer.change.new")),
        )
        for change in changes
    ]


# ---------------------------------------------------------------------- I/O


def search_page(
    es: Elasticsearch, target: str, filters: Filters, *, size: int, after: Sequence[Any] | None
) -> Page:
    """One page of events; a target that does not exist yet has no events."""
    body = build_search(filters, size=size, after=after)
    try:
        response = es.search(index=target, **body)
    except NotFoundError:
        return Page([], None)
    return shape_page(response.body, size)


def iter_pages(
    es: Elasticsearch, target: str, filters: Filters, *, size: int, after: Sequence[Any] | None
) -> Iterator[Page]:
    """Every page from ``after`` on; appended (newer) events never shift older pages."""
    while True:
        page = search_page(es, target, filters, size=size, after=after)
        yield page
        if page.cursor is None:
            return
        after = decode_cursor(page.cursor)


def find_event(es: Elasticsearch, target: str, event_id: str) -> dict[str, Any] | None:
    try:
        response = es.search(index=target, query=event_query(event_id), size=1)
    except NotFoundError:
        return None
    hits = response.body["hits"]["hits"]
    return stored_document(hits[0]) if hits else None


def fetch_changes(
    es: Elasticsearch, target: str, event_id: str, *, page_size: int = 1000
) -> list[dict[str, Any]]:
    """Every change document of an event, ordered by ``appmixer.change.index``."""
    found: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        body = changes_search(event_id, size=page_size, after=after)
        try:
            hits = es.search(index=target, **body).body["hits"]["hits"]
        except NotFoundError:
            return found
        found.extend(dict(hit["_source"]) for hit in hits)
        if len(hits) < page_size:
            return found
        after = hits[-1]["sort"][0]
