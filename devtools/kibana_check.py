"""Kibana's saved-object import checks, replayed offline on an NDJSON file.

Kibana cannot run here, so the dashboards are checked as strictly as its import checks them
(``collectSavedObjects``, ``validateReferences``, the create schemas of the oldest supported
version, the migration-version guard) plus what breaks a dashboard only when it is opened
(a panel, control, filter or link whose reference or field is missing), and the page's own
rules, learnt in a real Kibana: a table of events must have no row cap (a Lens ``terms``
table on the event id shows at most ``size`` rows: use a saved-search panel), panels use only
aggregations every licence and distribution has (Lens ``last_value`` needs ``top_metrics``,
which the integ-test distribution lacks), and the way to an event's details is one click on a
link (a data view URL field format) rather than a drilldown (a bucket cell, "Filter for",
then a menu). Each problem names its rule, so a test can feed a broken copy and see the rule
it targets fail.

``check_rules`` does the same for the detection rules' import file: Kibana before 8.15
refuses a ``required_fields`` entry without ``ecs``, and a rule without
``timestamp_override: event.ingested`` never evaluates an event that arrives later than its
look-back.

Field types are never written here: they come from ``mappings/`` through ``indexer.fields``;
a data view is tied to the target whose index template has its pattern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mappings
from indexer.fields import INDEX_TEMPLATES, Field, Target, mapped_fields

# The oldest Kibana these objects must import into, and the newest migration version each
# type had there (dashboards and Lens switched to model versions after 8.9.0; searches and
# data views are safe at 8.0.0, their conversion to multi-namespace types).
FLOOR_KIBANA = (8, 11, 0)
MAX_TYPE_VERSIONS: dict[str, tuple[int, int, int]] = {
    "dashboard": (8, 9, 0),
    "lens": (8, 9, 0),
    "search": (8, 0, 0),
    "index-pattern": (8, 0, 0),
}
IMPORTABLE = frozenset(MAX_TYPE_VERSIONS)
GRID_COLUMNS = 48
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

# Attribute keys each type's create schema accepts at the floor (unknown keys are refused:
# Kibana's dashboard 8.9.0 and search 8.8.0 schemas forbid them), and the required ones.
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "dashboard": frozenset(
        {
            "title",
            "description",
            "kibanaSavedObjectMeta",
            "timeRestore",
            "timeFrom",
            "timeTo",
            "refreshInterval",
            "controlGroupInput",
            "panelsJSON",
            "optionsJSON",
            "hits",
            "version",
        }
    ),
    "search": frozenset(
        {
            "title",
            "description",
            "columns",
            "sort",
            "grid",
            "rowHeight",
            "rowsPerPage",
            "hideChart",
            "breakdownField",
            "kibanaSavedObjectMeta",
            "isTextBasedQuery",
            "usesAdHocDataView",
            "timeRestore",
            "timeRange",
            "refreshInterval",
            "viewMode",
            "hideAggregatedPreview",
            "hits",
            "version",
        }
    ),
    "lens": frozenset({"title", "description", "visualizationType", "state"}),
    "index-pattern": frozenset(
        {
            "title",
            "name",
            "timeFieldName",
            "allowNoIndex",
            "fieldAttrs",
            "fieldFormatMap",
            "runtimeFieldMap",
            "sourceFilters",
            "fields",
            "typeMeta",
        }
    ),
}
CONTROL_GROUP_KEYS = frozenset(
    {"panelsJSON", "controlStyle", "chainingSystem", "ignoreParentSettingsJSON"}
)

# Attributes Kibana keeps as JSON text, and the JSON kind each must decode to.
ENCODED: dict[str, tuple[tuple[str, type], ...]] = {
    "dashboard": (
        ("panelsJSON", list),
        ("optionsJSON", dict),
        ("kibanaSavedObjectMeta.searchSourceJSON", dict),
        ("controlGroupInput.panelsJSON", dict),
        ("controlGroupInput.ignoreParentSettingsJSON", dict),
    ),
    "search": (("kibanaSavedObjectMeta.searchSourceJSON", dict),),
    "index-pattern": (
        ("fieldAttrs", dict),
        ("fieldFormatMap", dict),
        ("runtimeFieldMap", dict),
        ("sourceFilters", list),
        ("fields", list),
    ),
}

AGGREGATABLE = frozenset(
    {
        "keyword",
        "constant_keyword",
        "wildcard",
        "boolean",
        "ip",
        "date",
        "date_nanos",
        "long",
        "integer",
        "short",
        "byte",
        "double",
        "float",
        "half_float",
        "scaled_float",
        "unsigned_long",
        "flattened",
        "version",
    }
)
DATES = frozenset({"date", "date_nanos"})
NUMBERS = frozenset(AGGREGATABLE - {"keyword", "constant_keyword", "wildcard", "boolean", "ip"})
RECORDS = "___records___"
DRILLDOWN = "DASHBOARD_TO_DASHBOARD_DRILLDOWN"
# Lens operations whose aggregations every licence and distribution has (server core:
# terms, date_histogram, metrics, percentiles, cardinality, filters, range), and the
# aggregation behind those that need more.
BASIC_OPERATIONS = frozenset(
    {
        "count",
        "terms",
        "date_histogram",
        "max",
        "min",
        "sum",
        "average",
        "median",
        "percentile",
        "unique_count",
        "filters",
        "range",
    }
)
AGGREGATION_OF = {"last_value": "top_metrics", "percentile_rank": "percentile_ranks"}
# Fields with one value per event: a terms table on one lists events, capped at its size.
PER_EVENT = frozenset({"event.id", "event.hash"})
_LINK = re.compile(r"^dashboards#/view/([\w-]+)(?:\?.*)?$")
_KQL_FIELD = re.compile(r"(?:^|[\s(])([A-Za-z_@][\w.@-]*)\s*:")

# What a use needs of a field's type: (types, or None for any mapped and indexed field).
NEEDS: dict[str, tuple[frozenset[str] | None, str]] = {
    "column": (None, "a mapped field"),
    "sort": (AGGREGATABLE, "an aggregatable field"),
    "control": (AGGREGATABLE, "an aggregatable field"),
    "filter": (None, "an indexed field"),
    "query": (None, "an indexed field"),
    "terms": (AGGREGATABLE, "an aggregatable field"),
    "last_value": (AGGREGATABLE, "an aggregatable field"),
    "date_histogram": (DATES, "a date field"),
    "max": (DATES | NUMBERS, "a date or numeric field"),
    "min": (DATES | NUMBERS, "a date or numeric field"),
    "label": (None, "a mapped field"),
    "time": (DATES, "a date field"),
}


@dataclass(frozen=True)
class Problem:
    """One thing Kibana's import (or the opened dashboard) would refuse."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.rule}]"


@dataclass
class _Object:
    line: int
    type: str
    id: str
    attributes: dict[str, Any]
    references: list[dict[str, Any]]
    raw: dict[str, Any]
    decoded: dict[str, Any]

    @property
    def where(self) -> str:
        return f"line {self.line} {self.type}:{self.id}"

    def ref(self, name: str) -> dict[str, Any] | None:
        for reference in self.references:
            if reference.get("name") == name:
                return reference
        return None


def _version(text: Any) -> tuple[int, int, int] | None:
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _shown(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def _get(holder: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        inner = holder.get(parent)
        if not isinstance(inner, dict):
            return False, None
        holder = inner
    return (leaf in holder), holder.get(leaf)


def target_of_pattern(pattern: str) -> Target | None:
    """The target whose index template carries this data view pattern."""
    for target, template in INDEX_TEMPLATES.items():
        if pattern in mappings.load("index", template).get("index_patterns", []):
            return target
    return None


def resolve_field(target: Target, name: str) -> Field | None:
    """A mapped leaf, or a multi-field of one (``message.keyword``) as its own field."""
    fields = mapped_fields(target)
    if name in fields:
        return fields[name]
    parent, _, suffix = name.rpartition(".")
    owner = fields.get(parent)
    if owner is not None:
        for sub, sub_type in owner.subfields:
            if sub == suffix:
                return Field(name, sub_type, owner.indexed)
    return None


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.objects: list[_Object] = []
        self.by_key: dict[tuple[str, str], _Object] = {}

    def fail(self, rule: str, where: str, message: str) -> None:
        self.problems.append(Problem(rule, where, message))

    # ------------------------------------------------------------ parse, unique, type
    def parse(self, text: str) -> None:
        for number, raw in json_lines(text, "parse", self.problems):
            if not isinstance(raw, dict):
                self.fail("parse", f"line {number}", "not a JSON object")
                continue
            if "exportedCount" in raw:  # the export summary line, skipped by Kibana too
                continue
            object_type, object_id = raw.get("type"), raw.get("id")
            attributes, references = raw.get("attributes"), raw.get("references", [])
            if not isinstance(object_type, str) or not isinstance(object_id, str):
                self.fail("parse", f"line {number}", "type and id must be strings")
                continue
            if not isinstance(attributes, dict) or not isinstance(references, list):
                message = "attributes must be an object and references a list"
                self.fail("parse", f"line {number} {object_type}:{object_id}", message)
                continue
            obj = _Object(number, object_type, object_id, attributes, references, raw, {})
            if object_type not in IMPORTABLE:
                self.fail("type", obj.where, f"type {object_type} is not one this file ships")
            key = (object_type, object_id)
            if key in self.by_key:
                first = self.by_key[key].line
                self.fail("unique", obj.where, f"{object_type}:{object_id} repeats line {first}")
                continue
            self.by_key[key] = obj
            self.objects.append(obj)

    # ------------------------------------------------------------ versions
    def versions(self, obj: _Object) -> None:
        core = _version(obj.raw.get("coreMigrationVersion"))
        typed = _version(obj.raw.get("typeMigrationVersion"))
        if core is None or typed is None:
            message = "coreMigrationVersion and typeMigrationVersion must be x.y.z versions"
            self.fail("version", obj.where, message)
            return
        if core > FLOOR_KIBANA:
            message = f"coreMigrationVersion {_shown(core)} is newer than Kibana "
            self.fail("version", obj.where, message + _shown(FLOOR_KIBANA))
        limit = MAX_TYPE_VERSIONS.get(obj.type)
        if limit is not None and typed > limit:
            message = (
                f"typeMigrationVersion {_shown(typed)} is newer than {_shown(limit)}, the "
                f"latest {obj.type} version Kibana {_shown(FLOOR_KIBANA)} knows: it refuses it"
            )
            self.fail("version", obj.where, message)

    # ------------------------------------------------------------ JSON strings, attributes
    def decode(self, obj: _Object) -> None:
        decoded = json.loads(json.dumps(obj.attributes))
        for path, kind in ENCODED.get(obj.type, ()):
            present, value = _get(obj.attributes, path)
            if not present:
                continue
            if not isinstance(value, str):
                message = f"{path} must be a JSON string, not {type(value).__name__}"
                self.fail("json-string", obj.where, message)
                continue
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                self.fail("json-string", obj.where, f"{path} does not parse: {exc}")
                continue
            if not isinstance(parsed, kind):
                self.fail("json-string", obj.where, f"{path} must hold a JSON {kind.__name__}")
                continue
            *parents, leaf = path.split(".")
            holder = decoded
            for parent in parents:
                holder = holder[parent]
            holder[leaf] = parsed
        obj.decoded = decoded

    def attributes(self, obj: _Object) -> None:
        allowed = ALLOWED_ATTRIBUTES.get(obj.type)
        if allowed is None:
            return
        unknown = sorted(set(obj.attributes) - allowed)
        if unknown:
            message = f"attributes {', '.join(unknown)} are not in the {obj.type} schema"
            self.fail("attributes", obj.where, message)
        if not isinstance(obj.attributes.get("title"), str) or not obj.attributes["title"]:
            self.fail("attributes", obj.where, "title is required")
        group = obj.attributes.get("controlGroupInput")
        if obj.type == "dashboard" and isinstance(group, dict):
            extra = sorted(set(group) - CONTROL_GROUP_KEYS)
            if extra:
                message = f"controlGroupInput keys {', '.join(extra)} are not in the schema"
                self.fail("attributes", obj.where, message)

    # ------------------------------------------------------------ references
    def references(self, obj: _Object) -> None:
        names: set[str] = set()
        for reference in obj.references:
            if not isinstance(reference, dict) or not all(
                isinstance(reference.get(key), str) for key in ("type", "id", "name")
            ):
                self.fail("reference", obj.where, f"malformed reference {reference!r}")
                continue
            name = reference["name"]
            if name in names:
                self.fail("reference", obj.where, f"reference name {name} is used twice")
            names.add(name)
            if (reference["type"], reference["id"]) not in self.by_key:
                message = (
                    f"reference {name} points to {reference['type']}:{reference['id']}, "
                    "which is not in the file"
                )
                self.fail("reference", obj.where, message)

    def named(self, obj: _Object, name: str, expected: str | tuple[str, ...]) -> _Object | None:
        """The object behind a reference name the attributes use, or a ref-name problem."""
        reference = obj.ref(name)
        types = (expected,) if isinstance(expected, str) else expected
        if reference is None:
            self.fail("ref-name", obj.where, f"no reference named {name}")
            return None
        if reference.get("type") not in types:
            message = f"reference {name} is a {reference.get('type')}, not a {'/'.join(types)}"
            self.fail("ref-name", obj.where, message)
            return None
        return self.by_key.get((reference["type"], reference["id"]))

    # ------------------------------------------------------------ fields
    def use(self, obj: _Object, view: _Object | None, field: Any, use: str, what: str) -> None:
        if view is None:
            return
        target = target_of_pattern(str(view.attributes.get("title")))
        if target is None:
            message = f"data view {view.id} ({view.attributes.get('title')}) matches no target"
            self.fail("field", obj.where, message)
            return
        found = resolve_field(target, field) if isinstance(field, str) else None
        types, needs = NEEDS[use]
        if found is None:
            message = f"{what}: {field} is not mapped in the {target} target"
            self.fail("field", obj.where, message)
        elif not found.indexed or (types is not None and found.type not in types):
            message = f"{what}: {field} is a {found.type}; {use} needs {needs}"
            self.fail("field", obj.where, message)

    def query_fields(self, obj: _Object, view: _Object | None, query: Any, what: str) -> None:
        if isinstance(query, dict) and isinstance(query.get("query"), str):
            for match in _KQL_FIELD.finditer(query["query"]):
                self.use(obj, view, match.group(1), "query", what)

    def search_source(self, obj: _Object, source: dict[str, Any]) -> _Object | None:
        """Check a searchSourceJSON: its data view reference and filter fields."""
        view = None
        if "indexRefName" in source:
            view = self.named(obj, source["indexRefName"], "index-pattern")
        for position, item in enumerate(source.get("filter", [])):
            meta = item.get("meta", {}) if isinstance(item, dict) else {}
            filter_view = view
            if "indexRefName" in meta:
                filter_view = self.named(obj, meta["indexRefName"], "index-pattern")
            elif view is None:
                self.fail("ref-name", obj.where, f"filter {position} names no data view")
            self.use(obj, filter_view, meta.get("key"), "filter", f"filter {position}")
        self.query_fields(obj, view, source.get("query"), "query")
        return view

    # ------------------------------------------------------------ per type
    def index_pattern(self, obj: _Object) -> None:
        labels = obj.decoded.get("fieldAttrs", {})
        self.use(obj, obj, obj.attributes.get("timeFieldName"), "time", "time field")
        for field in labels if isinstance(labels, dict) else ():
            self.use(obj, obj, field, "label", "field label")
        for field, target in self.links(obj).items():
            self.use(obj, obj, field, "label", f"link on {field}")
            if target is None:
                template = obj.decoded["fieldFormatMap"][field].get("params", {}).get("urlTemplate")
                message = (
                    f"the URL format on {field} ({template!r}) is not a relative link "
                    "dashboards#/view/<id>...{{value}}...: an absolute or /-rooted URL "
                    "misses Kibana's base path or space"
                )
                self.fail("link", obj.where, message)
            elif ("dashboard", target) not in self.by_key:
                message = f"the link on {field} opens dashboard {target}, which is not in the file"
                self.fail("link", obj.where, message)

    def links(self, view: _Object) -> dict[str, str | None]:
        """The fields a data view shows as links to a dashboard: field -> dashboard id (None
        for a URL format that is no such link)."""
        formats = view.decoded.get("fieldFormatMap", {})
        found: dict[str, str | None] = {}
        for field, entry in formats.items() if isinstance(formats, dict) else ():
            if not isinstance(entry, dict) or entry.get("id") != "url":
                continue
            template = str(entry.get("params", {}).get("urlTemplate", ""))
            match = _LINK.match(template)
            linked = match is not None and "{{value}}" in template
            found[field] = match.group(1) if match is not None and linked else None
        return found

    def search(self, obj: _Object) -> None:
        source = obj.decoded.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", {})
        if not isinstance(source, dict):
            return
        view = self.search_source(obj, source)
        for column in obj.attributes.get("columns", []):
            self.use(obj, view, column, "column", "column")
        for entry in obj.attributes.get("sort", []):
            if isinstance(entry, list) and entry:
                self.use(obj, view, entry[0], "sort", "sort")

    def lens(self, obj: _Object) -> None:
        state = obj.attributes.get("state", {})
        layers = state.get("datasourceStates", {}).get("formBased", {}).get("layers", {})
        if not layers:
            self.fail("field", obj.where, "a Lens visualization needs a formBased layer")
        views = []
        for layer_id, layer in layers.items():
            view = self.named(obj, f"indexpattern-datasource-layer-{layer_id}", "index-pattern")
            views.append(view)
            for column_id, column in layer.get("columns", {}).items():
                operation = column.get("operationType")
                field = column.get("sourceField")
                what = f"layer {layer_id} column {column_id}"
                if operation not in BASIC_OPERATIONS:
                    aggregation = AGGREGATION_OF.get(str(operation), "an aggregation")
                    message = (
                        f"{what}: {operation} needs {aggregation}, which not every licence "
                        "and distribution has; use count, terms, date_histogram, min, max..."
                    )
                    self.fail("aggregation", obj.where, message)
                if operation == "terms" and field in PER_EVENT:
                    size = column.get("params", {}).get("size")
                    message = (
                        f"{what}: one row per {field} lists events, but at most {size} of "
                        "them with no paging: show events in a saved-search panel, which pages"
                    )
                    self.fail("row-cap", obj.where, message)
                if operation == "count":
                    if field != RECORDS:
                        self.use(obj, view, field, "filter", what)
                elif operation in NEEDS:
                    self.use(obj, view, field, operation, what)
                else:
                    self.fail("field", obj.where, f"{what}: operation {operation} is not known")
                params = column.get("params", {})
                if operation == "last_value" and "sortField" in params:
                    self.use(obj, view, params["sortField"], "sort", what + " sort")
                self.query_fields(obj, view, column.get("filter"), what + " filter")
        for view in views:
            self.query_fields(obj, view, state.get("query"), "query")

    def dashboard(self, obj: _Object) -> None:
        decoded = obj.decoded
        source = decoded.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON", {})
        if isinstance(source, dict):
            self.search_source(obj, source)
            filters = source.get("filter", [])
            if not any(
                isinstance(item, dict) and item.get("meta", {}).get("key") == "data_stream.dataset"
                for item in filters
            ):
                self.fail("filter", obj.where, "the dashboard has no data_stream.dataset filter")
        group = decoded.get("controlGroupInput", {})
        controls = group.get("panelsJSON", {}) if isinstance(group, dict) else {}
        for control_id, control in controls.items() if isinstance(controls, dict) else ():
            name = f"controlGroup_{control_id}:optionsListDataView"
            view = self.named(obj, name, "index-pattern")
            explicit = control.get("explicitInput", {}) if isinstance(control, dict) else {}
            what = f"control {control_id}"
            self.use(obj, view, explicit.get("fieldName"), "control", what)
        panels = decoded.get("panelsJSON", [])
        self.grid(obj, panels if isinstance(panels, list) else [])
        for item in panels if isinstance(panels, list) else []:
            self.panel(obj, item)

    def panel(self, obj: _Object, item: dict[str, Any]) -> None:
        index = item.get("panelIndex")
        target = None
        if "panelRefName" in item:
            name = f"{index}:{item['panelRefName']}"
            target = self.named(obj, name, ("lens", "search", "visualization"))
        else:
            saved = item.get("embeddableConfig", {}).get("savedVis", {})
            if item.get("type") != "visualization" or saved.get("type") != "markdown":
                message = f"panel {index} has no panelRefName and is no text (markdown) panel"
                self.fail("ref-name", obj.where, message)
        events = (
            item.get("embeddableConfig", {})
            .get("enhancements", {})
            .get("dynamicActions", {})
            .get("events", [])
        )
        for event in events:
            action = event.get("action", {})
            if action.get("factoryId") != DRILLDOWN:
                continue
            name = f"{index}:drilldown:{DRILLDOWN}:{event.get('eventId')}:dashboardId"
            self.named(obj, name, "dashboard")
            message = (
                f"panel {index} has a dashboard drilldown: it opens from a bucket cell, behind "
                "'Filter for' and a menu; link the id with a URL field format instead"
            )
            self.fail("link", obj.where, message)
        if target is not None and target.type == "search" and obj.id not in self.link_targets():
            self.linked_columns(obj, target, f"panel {index}")

    def link_targets(self) -> set[str]:
        """The dashboards the data views' links open."""
        return {
            target
            for view in self.objects
            if view.type == "index-pattern"
            for target in self.links(view).values()
            if target is not None
        }

    def linked_columns(self, obj: _Object, search: _Object, what: str) -> None:
        """A table of events must show a column that links to the event's details."""
        reference = search.ref(INDEX_REF)
        view = self.by_key.get(("index-pattern", reference["id"])) if reference else None
        if view is None:
            return
        links = self.links(view)
        columns = search.attributes.get("columns", [])
        if not any(links.get(column) for column in columns if isinstance(column, str)):
            message = (
                f"{what}: the table {search.id} shows no column that links to an event's "
                f"details (the URL formats of {view.id}: {', '.join(sorted(links)) or 'none'})"
            )
            self.fail("link", obj.where, message)

    def grid(self, obj: _Object, panels: list[Any]) -> None:
        cells: list[tuple[str, int, int, int, int]] = []
        seen: set[str] = set()
        for item in panels:
            index = item.get("panelIndex") if isinstance(item, dict) else None
            grid = item.get("gridData", {}) if isinstance(item, dict) else {}
            where = f"panel {index}"
            if not isinstance(index, str) or index in seen:
                self.fail("grid", obj.where, f"{where}: panelIndex missing or repeated")
                continue
            seen.add(index)
            numbers = [grid.get(key) for key in ("x", "y", "w", "h")]
            x, y, w, h = (value if type(value) is int else -1 for value in numbers)
            if -1 in (x, y, w, h):
                self.fail("grid", obj.where, f"{where}: gridData x, y, w, h must be integers")
                continue
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
                message = f"{where}: cell x={x} w={w} leaves the {GRID_COLUMNS}-column grid"
                self.fail("grid", obj.where, message)
            if grid.get("i") != index:
                self.fail("grid", obj.where, f"{where}: gridData.i must equal panelIndex")
            for other, ox, oy, ow, oh in cells:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    self.fail("grid", obj.where, f"{where} overlaps panel {other}")
            cells.append((index, x, y, w, h))

    # ------------------------------------------------------------ all
    def run(self, text: str) -> list[Problem]:
        self.parse(text)
        for obj in self.objects:
            self.versions(obj)
            self.decode(obj)
            self.attributes(obj)
            self.references(obj)
        by_type = {
            "index-pattern": self.index_pattern,
            "search": self.search,
            "lens": self.lens,
            "dashboard": self.dashboard,
        }
        for obj in self.objects:
            if obj.type in by_type:
                by_type[obj.type](obj)
        return self.problems


def check(text: str) -> list[Problem]:
    """Every problem Kibana's import or the opened dashboards would meet, in file order."""
    return _Checker().run(text)


RULE_TIME_FIELD = "event.ingested"


def _rule_problems(number: int, rule: dict[str, Any]) -> Iterator[Problem]:
    where = f"line {number} rule {rule.get('rule_id')}"
    required = rule.get("required_fields")
    for position, entry in enumerate(required if isinstance(required, list) else [None]):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(key), str) for key in ("name", "type")
        ):
            message = f"required_fields.{position} must be an object with a name and a type"
            yield Problem("required-fields", where, message)
        elif not isinstance(entry.get("ecs"), bool):
            message = (
                f"required_fields.{position}.ecs: Required ({entry['name']}): Kibana before "
                "8.15 refuses the rule without it"
            )
            yield Problem("required-fields", where, message)
    override = rule.get("timestamp_override")
    found = mapped_fields("events").get(override) if isinstance(override, str) else None
    if override != RULE_TIME_FIELD or found is None or found.type not in DATES:
        message = (
            f"timestamp_override is {override!r}, not {RULE_TIME_FIELD!r}: on @timestamp an "
            "event indexed later than the rule's look-back is never evaluated"
        )
        yield Problem("timestamp-override", where, message)


def json_lines(text: str, rule: str, problems: list[Problem]) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank NDJSON line; a line that is not JSON is a
    problem of ``rule`` instead."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(rule, f"line {number}", f"not JSON: {exc}"))
            continue
        yield number, value


def check_rules(text: str) -> list[Problem]:
    """Every problem of a detection rules import file (one rule a line), in file order."""
    problems: list[Problem] = []
    for number, rule in json_lines(text, "rule-parse", problems):
        if not isinstance(rule, dict) or not isinstance(rule.get("rule_id"), str):
            problems.append(Problem("rule-parse", f"line {number}", "not a rule: no rule_id"))
            continue
        problems.extend(_rule_problems(number, rule))
    return problems
