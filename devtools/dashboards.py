"""The source of ``dashboards/appmixer-audit.ndjson``: Kibana saved objects, written decoded.

Kibana stores some attributes as JSON text (``panelsJSON``, ``searchSourceJSON``, ...). They
are written here as Python data and encoded on output, as Elastic's package builder does, so
the file is never edited by hand:

    python -m devtools.dashboards > dashboards/appmixer-audit.ndjson

Shapes are Kibana 8.x ones that every supported version imports (8.11 and later; 9.x
migrates them on import): dashboards and Lens at migration version 8.9.0 (the last before
model versions), saved searches and data views at 8.0.0. ``devtools.kibana_check`` replays
Kibana's import checks on the output, and the page's own rules (no capped Lens table of events,
aggregations every distribution has, a link to the details rather than a drilldown); a unit
test keeps the committed file equal to this module's output.

The page: the Audit Logs dashboard's table is a saved search (the range's events, newest
first, in pages of the documents themselves, no aggregation). Its Event ID cell is a link, a
URL field format of the data view (``DETAILS_URL``), to the event dashboard with the event's
id as its query; relative, so it resolves against Kibana's base path and the current space.
The event dashboard opened without an event keeps its saved query, which matches nothing, and
its text panel says how to pick one.
"""

from __future__ import annotations

import json
import sys
from typing import Any

CORE_VERSION = "8.8.0"
EVENTS_DATASET = "appmixer.audit"
CHANGES_DATASET = "appmixer.audit_changes"

DV_EVENTS = "appmixer-audit-events"
DV_CHANGES = "appmixer-audit-changes"
SEARCH_LOG = "appmixer-audit-log"
SEARCH_CHANGES = "appmixer-audit-changes-table"
LENS_OVER_TIME = "appmixer-audit-events-over-time"
LENS_TOP_USERS = "appmixer-audit-top-users"
LENS_FAILED_LOGINS = "appmixer-audit-failed-logins"
DASHBOARD_LOGS = "appmixer-audit-logs"
DASHBOARD_EVENT = "appmixer-audit-event"
SEARCH_DELETIONS = "appmixer-audit-deletions"
SEARCH_STATES = "appmixer-audit-event-states"

LAYER = "layer1"
# The event dashboard with one event's id as its query (the URL's app state ``_a``, in rison;
# the double quotes percent-encoded; ``{{value}}`` is the id, URL-encoded by Kibana). Relative:
# Kibana puts ``<base path>[/s/<space>]/app/`` before it.
DETAILS_URL = (
    f"dashboards#/view/{DASHBOARD_EVENT}"
    "?_a=(query:(language:kuery,query:'event.id:%22{{value}}%22'))"
)
# The event dashboard's own query: no event is picked, so no panel lists anything.
NO_EVENT_QUERY = 'event.id : "none picked"'
PICK_AN_EVENT = """**Pick an event.** This dashboard shows one audit event: its row, its diff \
table (Path, Change, Old, New) and the stored before and after states.

* In the **Appmixer Audit Logs** dashboard, or in Discover, click the event's **Event ID** \
(a link): this dashboard opens with that event.
* Or replace the query above with `event.id : "<the id>"` and press Refresh.

Opened on its own it lists nothing: its saved query, `event.id : "none picked"`, matches no \
event."""
Obj = dict[str, Any]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- data views


def details_link() -> Obj:
    """The URL field format that makes an event id a link to its details, in place."""
    params = {
        "type": "a",
        "urlTemplate": DETAILS_URL,
        "labelTemplate": "{{value}}",
        "openLinkInCurrentTab": True,
    }
    return {"id": "url", "params": params}


def data_view(object_id: str, pattern: str, name: str, labels: dict[str, str]) -> Obj:
    attributes = {
        "title": pattern,
        "name": name,
        "timeFieldName": "@timestamp",
        "allowNoIndex": True,
        "fieldAttrs": {field: {"customLabel": label} for field, label in labels.items()},
        "fieldFormatMap": {"event.id": details_link()},
        "runtimeFieldMap": {},
        "sourceFilters": [],
        "fields": [],
    }
    return _object("index-pattern", object_id, "8.0.0", attributes, [])


# ---------------------------------------------------------------- filters


def phrase_filter(field: str, value: str, ref: str) -> Obj:
    return {
        "$state": {"store": "appState"},
        "meta": {
            "alias": None,
            "disabled": False,
            "negate": False,
            "type": "phrase",
            "key": field,
            "field": field,
            "params": {"query": value},
            "indexRefName": ref,
        },
        "query": {"match_phrase": {field: value}},
    }


def phrases_filter(field: str, values: list[str], ref: str) -> Obj:
    return {
        "$state": {"store": "appState"},
        "meta": {
            "alias": None,
            "disabled": False,
            "negate": False,
            "type": "phrases",
            "key": field,
            "field": field,
            "params": values,
            "value": ", ".join(values),
            "indexRefName": ref,
        },
        "query": {
            "bool": {
                "should": [{"match_phrase": {field: value}} for value in values],
                "minimum_should_match": 1,
            }
        },
    }


FILTER_REF = "kibanaSavedObjectMeta.searchSourceJSON.filter[0].meta.index"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


# ---------------------------------------------------------------- saved searches


def saved_search(
    object_id: str,
    title: str,
    description: str,
    *,
    view: str,
    dataset: str,
    columns: list[str],
    sort: list[list[str]],
    query: str = "",
) -> Obj:
    source = {
        "query": {"query": query, "language": "kuery"},
        "filter": [phrase_filter("data_stream.dataset", dataset, FILTER_REF)],
        "indexRefName": INDEX_REF,
    }
    attributes = {
        "title": title,
        "description": description,
        "columns": columns,
        "sort": sort,
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": source},
    }
    references = [
        {"type": "index-pattern", "id": view, "name": INDEX_REF},
        {"type": "index-pattern", "id": view, "name": FILTER_REF},
    ]
    return _object("search", object_id, "8.0.0", attributes, references)


# ---------------------------------------------------------------- Lens


def column(
    label: str, operation: str, field: str, *, data_type: str, scale: str, params: Obj
) -> Obj:
    """One Lens column; bucketed (a row or series per value) for histograms and terms."""
    return {
        "label": label,
        "customLabel": True,
        "dataType": data_type,
        "operationType": operation,
        "scale": scale,
        "sourceField": field,
        "isBucketed": operation in {"terms", "date_histogram"},
        "params": params,
    }


def terms(label: str, field: str, size: int, order_by: str) -> Obj:
    params = {
        "size": size,
        "orderBy": {"type": "column", "columnId": order_by},
        "orderDirection": "desc",
        "otherBucket": False,
        "missingBucket": False,
        "parentFormat": {"id": "terms"},
        "include": [],
        "exclude": [],
        "includeIsRegex": False,
        "excludeIsRegex": False,
    }
    return column(label, "terms", field, data_type="string", scale="ordinal", params=params)


def latest_time(label: str) -> Obj:
    params = {"emptyAsNull": True}
    return column(label, "max", "@timestamp", data_type="date", scale="ratio", params=params)


def count(label: str) -> Obj:
    params = {"emptyAsNull": True}
    return column(label, "count", "___records___", data_type="number", scale="ratio", params=params)


def date_histogram(label: str) -> Obj:
    params = {"interval": "auto", "includeEmptyRows": True, "dropPartials": False}
    return column(
        label, "date_histogram", "@timestamp", data_type="date", scale="interval", params=params
    )


def lens(
    object_id: str,
    title: str,
    description: str,
    *,
    visualization_type: str,
    visualization: Obj,
    columns: dict[str, Obj],
    query: str = "",
) -> Obj:
    state = {
        "visualization": visualization,
        "query": {"query": query, "language": "kuery"},
        "filters": [],
        "datasourceStates": {
            "formBased": {
                "layers": {
                    LAYER: {
                        "columnOrder": list(columns),
                        "columns": columns,
                        "incompleteColumns": {},
                    }
                }
            }
        },
        "internalReferences": [],
        "adHocDataViews": {},
    }
    attributes = {
        "title": title,
        "description": description,
        "visualizationType": visualization_type,
        "state": state,
    }
    references = [
        {"type": "index-pattern", "id": DV_EVENTS, "name": f"indexpattern-datasource-layer-{LAYER}"}
    ]
    return _object("lens", object_id, "8.9.0", attributes, references)


def table(column_ids: list[str], sort_by: str) -> Obj:
    return {
        "layerId": LAYER,
        "layerType": "data",
        "columns": [{"columnId": column_id} for column_id in column_ids],
        "sorting": {"columnId": sort_by, "direction": "desc"},
        "rowHeight": "single",
        "rowHeightLines": 1,
    }


def bars(series: str, x: str, y: str, split: str | None = None) -> Obj:
    layer: Obj = {
        "layerId": LAYER,
        "layerType": "data",
        "seriesType": series,
        "xAccessor": x,
        "accessors": [y],
    }
    if split is not None:
        layer["splitAccessor"] = split
    return {
        "preferredSeriesType": series,
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": "hide",
        "layers": [layer],
    }


def lens_objects() -> list[Obj]:
    over_time = {
        "type": terms("Event type", "appmixer.audit.type", 5, "count"),
        "time": date_histogram("Time"),
        "count": count("Events"),
    }
    top_users = {"user": terms("User", "user.email", 10, "count"), "count": count("Events")}
    failed = {
        "user": terms("User", "user.email", 20, "attempts"),
        "attempts": count("Failed logins"),
        "last": latest_time("Last attempt"),
    }
    return [
        lens(
            LENS_OVER_TIME,
            "Appmixer audit events over time",
            "Events per interval, stacked by event type (create, update, delete, access).",
            visualization_type="lnsXY",
            visualization=bars("bar_stacked", "time", "count", "type"),
            columns=over_time,
        ),
        lens(
            LENS_TOP_USERS,
            "Appmixer audit top users",
            "The users behind the most audit events.",
            visualization_type="lnsXY",
            visualization=bars("bar_horizontal", "user", "count"),
            columns=top_users,
        ),
        lens(
            LENS_FAILED_LOGINS,
            "Appmixer failed logins",
            "Failed logins per user, with the latest attempt.",
            visualization_type="lnsDatatable",
            visualization=table(["user", "attempts", "last"], "attempts"),
            columns=failed,
            query='event.action : "user.login_failed"',
        ),
    ]


# ---------------------------------------------------------------- dashboards


def options_list(control_id: str, order: int, title: str, field: str, view: str) -> Obj:
    return {
        "type": "optionsListControl",
        "order": order,
        "grow": True,
        "width": "medium",
        "explicitInput": {
            "id": control_id,
            "dataViewId": view,
            "fieldName": field,
            "title": title,
            "selectedOptions": [],
            "singleSelect": False,
            "exclude": False,
            "existsSelected": False,
            "sort": {"by": "_count", "direction": "desc"},
            "enhancements": {},
        },
    }


def panel(index: str, grid: tuple[int, int, int, int], panel_type: str, title: str = "") -> Obj:
    """A panel showing a saved object by reference (``panelRefName``)."""
    x, y, w, h = grid
    config: Obj = {"enhancements": {}}
    if title:
        config["title"] = title
    return {
        "type": panel_type,
        "panelIndex": index,
        "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
        "panelRefName": f"panel_{index}",
        "embeddableConfig": config,
    }


def markdown(index: str, grid: tuple[int, int, int, int], text: str) -> Obj:
    """A text panel, by value (a markdown visualization kept in the dashboard itself)."""
    x, y, w, h = grid
    saved = {
        "title": "",
        "description": "",
        "type": "markdown",
        "params": {"fontSize": 12, "openLinksInNewTab": False, "markdown": text},
        "uiState": {},
        "data": {
            "aggs": [],
            "searchSource": {"query": {"query": "", "language": "kuery"}, "filter": []},
        },
    }
    return {
        "type": "visualization",
        "panelIndex": index,
        "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
        "embeddableConfig": {"savedVis": saved, "hidePanelTitles": True, "enhancements": {}},
    }


def dashboard(
    object_id: str,
    title: str,
    description: str,
    *,
    panels: list[tuple[Obj, str, str]],
    controls: list[Obj],
    dataset_filter: Obj,
    query: str = "",
    time_from: str = "now-7d",
) -> Obj:
    """``panels``: (panel, saved object type, saved object id); by-value panels (text) have
    an empty type and id."""
    references: list[Obj] = [{"type": "index-pattern", "id": DV_EVENTS, "name": FILTER_REF}]
    for item, object_type, target in panels:
        if "panelRefName" in item:
            name = f"{item['panelIndex']}:{item['panelRefName']}"
            references.append({"type": object_type, "id": target, "name": name})
    panels_by_id: Obj = {}
    for control in controls:
        control_id = control["explicitInput"]["id"]
        panels_by_id[control_id] = control
        view = control["explicitInput"]["dataViewId"]
        name = f"controlGroup_{control_id}:optionsListDataView"
        references.append({"type": "index-pattern", "id": view, "name": name})
    attributes = {
        "title": title,
        "description": description,
        "timeRestore": True,
        "timeFrom": time_from,
        "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 60000},
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": {
                "query": {"query": query, "language": "kuery"},
                "filter": [dataset_filter],
            }
        },
        "controlGroupInput": {
            "controlStyle": "oneLine",
            "chainingSystem": "HIERARCHICAL",
            "panelsJSON": panels_by_id,
            "ignoreParentSettingsJSON": {
                "ignoreFilters": False,
                "ignoreQuery": False,
                "ignoreTimerange": False,
                "ignoreValidations": False,
            },
        },
        "panelsJSON": [item for item, _type, _id in panels],
        "optionsJSON": {
            "useMargins": True,
            "syncColors": False,
            "syncCursor": True,
            "syncTooltips": False,
            "hidePanelTitles": False,
        },
        "version": 1,
    }
    return _object("dashboard", object_id, "8.9.0", attributes, references)


def dashboards() -> list[Obj]:
    logs = dashboard(
        DASHBOARD_LOGS,
        "Appmixer Audit Logs",
        "Who did what in Appmixer, and when: filter by event type, user, flow ID and action; "
        "search any word or identifier in the query bar; click an event ID for its details.",
        panels=[
            (panel("events-over-time", (0, 0, 32, 10), "lens"), "lens", LENS_OVER_TIME),
            (panel("top-users", (32, 0, 16, 10), "lens"), "lens", LENS_TOP_USERS),
            (
                panel("events", (0, 10, 48, 24), "search", "Audit events"),
                "search",
                SEARCH_LOG,
            ),
            (panel("failed-logins", (0, 34, 20, 12), "lens"), "lens", LENS_FAILED_LOGINS),
            (
                panel("deletions", (20, 34, 28, 12), "search", "Recent deletions"),
                "search",
                SEARCH_DELETIONS,
            ),
        ],
        controls=[
            options_list("event-type", 0, "Event type", "appmixer.audit.type", DV_EVENTS),
            options_list("user", 1, "User", "user.email", DV_EVENTS),
            options_list("flow-id", 2, "Flow ID", "appmixer.flow.id", DV_EVENTS),
            options_list("action", 3, "Action", "event.action", DV_EVENTS),
        ],
        dataset_filter=phrase_filter("data_stream.dataset", EVENTS_DATASET, FILTER_REF),
    )
    event = dashboard(
        DASHBOARD_EVENT,
        "Appmixer audit event",
        "One event's details, its diff table (path, change, old, new) and its stored states. "
        "Opened from an Event ID link (Audit Logs dashboard, Discover) with that event as the "
        "query; on its own it lists nothing and says how to pick an event.",
        panels=[
            (markdown("pick-an-event", (0, 0, 48, 6), PICK_AN_EVENT), "", ""),
            (panel("details", (0, 6, 48, 7), "search", "Event"), "search", SEARCH_LOG),
            (panel("diff", (0, 13, 48, 16), "search", "Diff"), "search", SEARCH_CHANGES),
            (
                panel("states", (0, 29, 48, 14), "search", "Before and after"),
                "search",
                SEARCH_STATES,
            ),
        ],
        controls=[],
        dataset_filter=phrases_filter(
            "data_stream.dataset", [EVENTS_DATASET, CHANGES_DATASET], FILTER_REF
        ),
        query=NO_EVENT_QUERY,
        time_from="now-5y",
    )
    return [logs, event]


# ---------------------------------------------------------------- the file


def _object(
    object_type: str, object_id: str, version: str, attributes: Obj, references: list[Obj]
) -> Obj:
    return {
        "type": object_type,
        "id": object_id,
        "attributes": attributes,
        "references": references,
        "coreMigrationVersion": CORE_VERSION,
        "typeMigrationVersion": version,
        "managed": False,
    }


def objects() -> list[Obj]:
    """Every saved object, decoded, in import order (what others refer to comes first)."""
    return [
        data_view(
            DV_EVENTS,
            "logs-appmixer.audit-*",
            "Appmixer audit events",
            {
                "message": "Action",
                "user.email": "User",
                "@timestamp": "Created",
                "event.id": "Event ID",
                "event.action": "Action code",
                "appmixer.audit.type": "Event type",
                "appmixer.flow.id": "Flow ID",
                "appmixer.related.id": "Mentioned IDs",
            },
        ),
        data_view(
            DV_CHANGES,
            "logs-appmixer.audit_changes-*",
            "Appmixer audit changes",
            {
                "appmixer.change.path": "Path",
                "appmixer.change.op": "Change",
                "appmixer.change.old": "Old",
                "appmixer.change.new": "New",
                "@timestamp": "Created",
                "event.id": "Event ID",
            },
        ),
        saved_search(
            SEARCH_LOG,
            "Appmixer audit log",
            "The audit log as the Appmixer Audit Logs page shows it, newest first.",
            view=DV_EVENTS,
            dataset=EVENTS_DATASET,
            columns=[
                "message",
                "user.email",
                "@timestamp",  # here, Discover does not put its own time column first
                "appmixer.audit.type",
                "appmixer.flow.id",
                "event.id",  # the link to the event's details (the Audit Logs page's eye icon)
                "appmixer.entity.type",
                "appmixer.entity.id",
                "event.outcome",
            ],
            sort=[["@timestamp", "desc"]],
        ),
        saved_search(
            SEARCH_DELETIONS,
            "Appmixer recent deletions",
            "Delete events, newest first: what was deleted, by whom. Click an Event ID for what "
            "the object held.",
            view=DV_EVENTS,
            dataset=EVENTS_DATASET,
            columns=[
                "message",
                "user.email",
                "@timestamp",
                "appmixer.entity.type",
                "appmixer.entity.id",
                "appmixer.flow.id",
                "event.id",
            ],
            sort=[["@timestamp", "desc"]],
            query='appmixer.audit.type : "delete"',
        ),
        saved_search(
            SEARCH_STATES,
            "Appmixer audit event states",
            "The whole stored event, the redacted before and after states included "
            "(appmixer.audit.before.*, appmixer.audit.after.*; not indexed, so shown, "
            "not searchable).",
            view=DV_EVENTS,
            dataset=EVENTS_DATASET,
            columns=[],  # Discover's Document column: every field, the states' leaves too
            sort=[["@timestamp", "desc"]],
        ),
        saved_search(
            SEARCH_CHANGES,
            "Appmixer audit changes",
            "The diff table: one row per changed path, with the old and new value.",
            view=DV_CHANGES,
            dataset=CHANGES_DATASET,
            columns=[
                "appmixer.change.path",
                "appmixer.change.op",
                "appmixer.change.old",
                "appmixer.change.new",
            ],
            sort=[["@timestamp", "desc"], ["appmixer.change.index", "asc"]],
        ),
        *lens_objects(),
        *dashboards(),
    ]


# Attributes Kibana keeps as JSON text, per type (dotted paths into ``attributes``).
ENCODED: dict[str, tuple[str, ...]] = {
    "dashboard": (
        "panelsJSON",
        "optionsJSON",
        "kibanaSavedObjectMeta.searchSourceJSON",
        "controlGroupInput.panelsJSON",
        "controlGroupInput.ignoreParentSettingsJSON",
    ),
    "search": ("kibanaSavedObjectMeta.searchSourceJSON",),
    "index-pattern": ("fieldAttrs", "fieldFormatMap", "runtimeFieldMap", "sourceFilters", "fields"),
}


def encode(obj: Obj) -> Obj:
    """A copy with the JSON-text attributes encoded, as Kibana imports and exports them."""
    encoded: Obj = json.loads(json.dumps(obj))
    for path in ENCODED.get(encoded["type"], ()):
        *parents, leaf = path.split(".")
        holder = encoded["attributes"]
        for parent in parents:
            holder = holder[parent]
        holder[leaf] = _compact(holder[leaf])
    return encoded


def render() -> str:
    """The NDJSON file: one encoded object per line."""
    return "".join(_compact(encode(obj)) + "\n" for obj in objects())


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
