"""The dashboards' queries on a real node, taken from the shipped NDJSON, never retyped.

The agent ships 3,000 simulated events (``run --once``). Each panel of the two dashboards is
then run as Kibana runs it: the panel's saved search (its data view, query, filters, sort,
columns) or Lens visualization (its query and columns as aggregations), under the
dashboard's filters, query and time range. The Audit Logs table's search, paged, must list
every event of the range, newest first, with the seed's columns (Kibana shows the first
``discover:sampleSize`` of them in the panel, docs/kibana.md "How many rows"); the event
dashboard, opened through the Event ID link of one event (the data view's URL format, its
``_a`` query), must show that event's row, its diff in diff order and its stored states,
and opened alone, nothing.

Data view patterns (``logs-appmixer.audit-*``) are narrowed to this test's namespace, so other
tests' data on the shared node cannot count.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
import pytest
from elasticsearch import Elasticsearch

from agent.normalize import Normalized, Normalizer
from devtools import dashboards as source
from devtools.simulate import start_for_end, write_events
from indexer.kibana import bundled_objects
from tests.esnode import remove_targets
from tests.system.conftest import ship_once

pytestmark = pytest.mark.system

EVENTS = 3000
Obj = dict[str, Any]


# ---------------------------------------------------------------- the shipped objects


def shipped() -> dict[tuple[str, str], Obj]:
    """Every object of the NDJSON, its JSON-text attributes decoded."""
    objects = {}
    for line in bundled_objects().decode().splitlines():
        obj = json.loads(line)
        for key, value in list(obj["attributes"].items()):
            if key.endswith("JSON") or key in {"fieldFormatMap", "fieldAttrs"}:
                obj["attributes"][key] = json.loads(value)
        meta = obj["attributes"].get("kibanaSavedObjectMeta")
        if meta is not None:
            meta["searchSourceJSON"] = json.loads(meta["searchSourceJSON"])
        objects[(obj["type"], obj["id"])] = obj
    return objects


OBJECTS = shipped()


def referenced(obj: Obj, name: str) -> Obj:
    ref = next(ref for ref in obj["references"] if ref["name"] == name)
    return OBJECTS[(ref["type"], ref["id"])]


def panels(dashboard_id: str) -> Iterator[tuple[Obj, Obj | None]]:
    """(panel, the saved object it shows, or None for a by-value text panel)."""
    dashboard = OBJECTS[("dashboard", dashboard_id)]
    for item in dashboard["attributes"]["panelsJSON"]:
        if "panelRefName" not in item:
            yield item, None
        else:
            yield item, referenced(dashboard, f"{item['panelIndex']}:{item['panelRefName']}")


_KQL = re.compile(r'^\s*([\w.@]+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"()]+))\s*$')


def kql(query: Obj) -> list[Obj]:
    """The few KQL forms the objects use (``field : "value"``, or nothing) as Query DSL."""
    assert query["language"] == "kuery"
    text = query["query"]
    if not text.strip():
        return []
    match = _KQL.match(text)
    assert match is not None, f"KQL the test does not translate: {text!r}"
    field, quoted, bare = match.groups()
    value = bare if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
    return [{"match_phrase": {field: value}}]


def link_query(view_id: str, event_id: str) -> Obj:
    """The query the Event ID link opens the event dashboard with: the data view's URL
    template with the id, its ``_a`` app state read back (rison)."""
    params = OBJECTS[("index-pattern", view_id)]["attributes"]["fieldFormatMap"]["event.id"]
    url = params["params"]["urlTemplate"].replace("{{value}}", quote(event_id, safe=""))
    assert url.startswith(f"dashboards#/view/{source.DASHBOARD_EVENT}?")
    state = unquote(url.split("_a=", 1)[1])
    match = re.fullmatch(r"\(query:\(language:(\w+),query:'((?:[^'!]|!.)*)'\)\)", state)
    assert match is not None, state
    return {"language": match.group(1), "query": re.sub(r"!(.)", r"\1", match.group(2))}


# ---------------------------------------------------------------- running a panel


class Page:
    """One dashboard as Kibana loads it: its filters, query and time range."""

    def __init__(self, es: Elasticsearch, namespace: str, dashboard_id: str) -> None:
        self.es, self.namespace = es, namespace
        self.dashboard = OBJECTS[("dashboard", dashboard_id)]
        search_source = self.dashboard["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
        self.filters = [item["query"] for item in search_source["filter"]]
        self.query = search_source["query"]
        attributes = self.dashboard["attributes"]
        self.time = {"gte": attributes["timeFrom"], "lte": attributes["timeTo"]}

    def index(self, view: Obj) -> str:
        pattern: str = view["attributes"]["title"]
        assert pattern.endswith("-*")
        return pattern[:-1] + self.namespace

    def bool(self, own: list[Obj]) -> Obj:
        time_range = {"range": {"@timestamp": self.time | {"format": "strict_date_optional_time"}}}
        return {"bool": {"filter": [*self.filters, *kql(self.query), *own, time_range]}}

    def search_rows(self, search: Obj, page_size: int = 500) -> list[Obj]:
        """Every row of a saved-search panel, page after page, in its sort order."""
        meta = search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
        view = referenced(search, meta["indexRefName"])
        own = [item["query"] for item in meta["filter"]] + kql(meta["query"])
        sort = [{field: direction} for field, direction in search["attributes"]["sort"]]
        rows: list[Obj] = []
        while True:
            body = self.es.search(
                index=self.index(view), query=self.bool(own), sort=sort,
                from_=len(rows), size=page_size, track_total_hits=True,
            ).body  # fmt: skip
            hits = body["hits"]["hits"]
            rows += [hit["_source"] for hit in hits]
            if len(hits) < page_size:
                assert len(rows) == body["hits"]["total"]["value"]
                return rows

    def lens(self, lens: Obj) -> Obj:
        """A Lens panel's columns as the aggregations Kibana sends (terms and histograms
        nested in column order, metrics inside): the response's aggregations."""
        state = lens["attributes"]["state"]
        [(layer_id, layer)] = state["datasourceStates"]["formBased"]["layers"].items()
        view = referenced(lens, f"indexpattern-datasource-layer-{layer_id}")
        columns = layer["columns"]
        aggs: Obj = {}
        metrics: Obj = {}
        for column_id in layer["columnOrder"]:
            column = columns[column_id]
            operation = column["operationType"]
            if operation in {"max", "min"}:
                metrics[column_id] = {operation: {"field": column["sourceField"]}}
            else:
                assert operation in {"count", "terms", "date_histogram"}, operation
        buckets = [columns[c] | {"id": c} for c in layer["columnOrder"] if columns[c]["isBucketed"]]
        inner = metrics
        for column in reversed(buckets):
            if column["operationType"] == "terms":
                order = column["params"]["orderBy"].get("columnId")
                terms: Obj = {"field": column["sourceField"], "size": column["params"]["size"]}
                if order in metrics:
                    terms["order"] = {order: "desc"}
                agg = {"terms": terms}
            else:
                agg = {"date_histogram": {"field": "@timestamp", "fixed_interval": "30m"}}
            inner = {column["id"]: agg | ({"aggs": inner} if inner else {})}
        aggs = inner
        body = self.es.search(
            index=self.index(view), query=self.bool(kql(state["query"])), size=0, aggs=aggs
        ).body
        result: Obj = body["aggregations"]
        return result


# ---------------------------------------------------------------- the shipped events


@pytest.fixture(scope="module")
def shipped_events(
    es: Elasticsearch, es_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[Obj]]]:
    """3,000 simulated events ending now, shipped by the agent: (namespace, the documents
    the normalizer makes of them, newest first)."""
    work = tmp_path_factory.mktemp("pages")
    logs = work / "logs"
    logs.mkdir()
    log = logs / "audit.ndjson"
    end_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    simulated = io.BytesIO()
    write_events(simulated, EVENTS, seed=20, start_ms=start_for_end(end_ms, EVENTS, 20))
    log.write_bytes(with_ids(simulated.getvalue()))
    namespace = ship_once(es, es_url, work, "pages")
    yield namespace, expected_documents(log)
    remove_targets(es, namespace)


def with_ids(lines: bytes) -> bytes:
    """The simulated lines, an ``id`` given to those that have none (a third: the agent
    derives theirs from the file and offset), so each row can be told by its id."""
    out = []
    for number, line in enumerate(lines.splitlines()):
        envelope = orjson.loads(line)
        inner = envelope.get("audit")  # a pino line: the record sits under "audit"
        record = inner if isinstance(inner, dict) else envelope
        if not any(key in record for key in ("id", "_id", "eventId", "auditId")):
            record["id"] = f"simulated-{number:05d}"
        out.append(orjson.dumps(envelope) + b"\n")
    return b"".join(out)


def expected_documents(log: Path) -> list[Obj]:
    """The event documents of the log as the normalizer makes them, newest first."""
    normalizer = Normalizer()
    documents = []
    for line in log.read_bytes().splitlines():
        outcome = normalizer(line)
        assert isinstance(outcome, Normalized)
        documents.append(outcome.event)
    return sorted(documents, key=lambda doc: doc["@timestamp"], reverse=True)


def dotted(doc: Obj, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def same_order(rows: list[Obj], expected: list[Obj]) -> None:
    """Rows in the expected order: newest first; events of the same millisecond in any order."""
    assert len(rows) == len(expected)

    def groups(docs: list[Obj]) -> list[tuple[str, set[str]]]:
        by_time = groupby(docs, key=lambda doc: doc["@timestamp"])
        return [(time, {doc["event"]["id"] for doc in group}) for time, group in by_time]

    assert groups(rows) == groups(expected)


# ---------------------------------------------------------------- the tests


class TestAuditLogsPage:
    def test_the_table_is_every_event_newest_first(
        self, es: Elasticsearch, shipped_events: tuple[str, list[Obj]]
    ) -> None:
        """All 3,000 events of the range, paged, newest first, each row's columns (Action,
        User, Created, Event type, Flow ID, Event ID ...) those of its event."""
        namespace, expected = shipped_events
        page = Page(es, namespace, source.DASHBOARD_LOGS)
        [(_item, search)] = [
            (item, obj)
            for item, obj in panels(source.DASHBOARD_LOGS)
            if item["panelIndex"] == "events"
        ]
        assert search is not None
        rows = page.search_rows(search)
        assert len(rows) == EVENTS
        same_order(rows, expected)
        by_id = {doc["event"]["id"]: doc for doc in expected}
        columns = search["attributes"]["columns"]
        assert columns[:6] == [
            "message", "user.email", "@timestamp", "appmixer.audit.type", "appmixer.flow.id",
            "event.id",
        ]  # fmt: skip
        for row in rows:
            wanted = by_id[row["event"]["id"]]
            assert [dotted(row, c) for c in columns] == [dotted(wanted, c) for c in columns]

    def test_recent_deletions(
        self, es: Elasticsearch, shipped_events: tuple[str, list[Obj]]
    ) -> None:
        """The deletions panel: every delete event, newest first."""
        namespace, expected = shipped_events
        page = Page(es, namespace, source.DASHBOARD_LOGS)
        search = OBJECTS[("search", source.SEARCH_DELETIONS)]
        deletions = [doc for doc in expected if doc["appmixer"]["audit"]["type"] == "delete"]
        assert deletions
        same_order(page.search_rows(search), deletions)

    def test_lens_panels(self, es: Elasticsearch, shipped_events: tuple[str, list[Obj]]) -> None:
        """Events over time, top users and failed logins, with basic aggregations only."""
        namespace, expected = shipped_events
        page = Page(es, namespace, source.DASHBOARD_LOGS)
        lenses = {
            obj["id"]: obj
            for _item, obj in panels(source.DASHBOARD_LOGS)
            if obj and obj["type"] == "lens"
        }
        assert set(lenses) == {
            source.LENS_OVER_TIME, source.LENS_TOP_USERS, source.LENS_FAILED_LOGINS,
        }  # fmt: skip

        over_time = page.lens(lenses[source.LENS_OVER_TIME])["type"]["buckets"]
        per_type = {bucket["key"]: bucket["doc_count"] for bucket in over_time}
        assert per_type == Counter(doc["appmixer"]["audit"]["type"] for doc in expected)
        for bucket in over_time:
            assert sum(b["doc_count"] for b in bucket["time"]["buckets"]) == bucket["doc_count"]

        users = Counter(
            doc["user"].get("email") for doc in expected if "email" in doc.get("user", {})
        )
        top = page.lens(lenses[source.LENS_TOP_USERS])["user"]["buckets"]
        assert [b["doc_count"] for b in top] == [n for _email, n in users.most_common(10)]
        assert all(users[b["key"]] == b["doc_count"] for b in top)

        failed = [doc for doc in expected if doc["event"]["action"] == "user.login_failed"]
        buckets = page.lens(lenses[source.LENS_FAILED_LOGINS])["user"]["buckets"]
        per_user = Counter(doc["user"]["email"] for doc in failed)
        top_failed = [n for _email, n in per_user.most_common(20)]  # the Lens's size
        assert [b["doc_count"] for b in buckets] == top_failed
        assert all(per_user[b["key"]] == b["doc_count"] for b in buckets)
        for bucket in buckets:
            latest = max(d["@timestamp"] for d in failed if d["user"]["email"] == bucket["key"])
            assert bucket["last"]["value_as_string"] == latest


class TestEventPage:
    def pick(self, expected: list[Obj]) -> Obj:
        """An event with a diff of several changes and both states."""
        return next(
            doc
            for doc in expected
            if doc["appmixer"]["audit"]["changes_count"] >= 3
            and "before" in doc["appmixer"]["audit"]
            and "after" in doc["appmixer"]["audit"]
        )

    def test_opened_from_the_link(
        self, es: Elasticsearch, shipped_events: tuple[str, list[Obj]]
    ) -> None:
        """The link's query: the event's row, its diff in diff order, its states."""
        namespace, expected = shipped_events
        event = self.pick(expected)
        event_id = event["event"]["id"]
        page = Page(es, namespace, source.DASHBOARD_EVENT)
        page.query = link_query(source.DV_EVENTS, event_id)
        assert page.query == {"language": "kuery", "query": f'event.id:"{event_id}"'}
        every = {item["panelIndex"]: obj for item, obj in panels(source.DASHBOARD_EVENT)}
        assert every.pop("pick-an-event") is None  # text, no query
        shown = {index: obj for index, obj in every.items() if obj is not None}
        assert set(shown) == {"details", "diff", "states"}

        [row] = page.search_rows(shown["details"])
        assert row["event"]["id"] == event_id
        assert row["message"] == event["message"]

        diff = page.search_rows(shown["diff"])
        columns = shown["diff"]["attributes"]["columns"]
        leaves = [column.removeprefix("appmixer.change.") for column in columns]
        assert leaves == ["path", "op", "old", "new"]
        got = [[dotted(doc, column) for column in columns] for doc in diff]
        assert got == [
            [change.get(leaf) for leaf in leaves]
            for change in event["appmixer"]["audit"]["changes"]
        ]
        assert {doc["event"]["id"] for doc in diff} == {event_id}

        [states] = page.search_rows(shown["states"])
        assert states["appmixer"]["audit"]["before"] == event["appmixer"]["audit"]["before"]
        assert states["appmixer"]["audit"]["after"] == event["appmixer"]["audit"]["after"]

    def test_the_changes_data_view_links_the_same_way(
        self, shipped_events: tuple[str, list[Obj]]
    ) -> None:
        event_id = self.pick(shipped_events[1])["event"]["id"]
        assert link_query(source.DV_CHANGES, event_id) == link_query(source.DV_EVENTS, event_id)

    def test_opened_alone_lists_nothing(
        self, es: Elasticsearch, shipped_events: tuple[str, list[Obj]]
    ) -> None:
        """Its saved query matches no event: every panel is empty; the text says what to do."""
        namespace, _expected = shipped_events
        page = Page(es, namespace, source.DASHBOARD_EVENT)
        for item, obj in panels(source.DASHBOARD_EVENT):
            if obj is None:
                assert "Event ID" in item["embeddableConfig"]["savedVis"]["params"]["markdown"]
            else:
                assert page.search_rows(obj) == [], item["panelIndex"]
