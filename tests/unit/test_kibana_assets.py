"""dashboards/appmixer-audit.ndjson against Kibana's import checks, replayed offline, and the
page's rules; the detection rules' import file against the rule import's.

The shipped files pass every rule; for each rule a broken copy fails that rule (and only
that one), so a rule that stopped checking anything would be seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from devtools import dashboards as source
from devtools import rules as rule_source
from devtools.kibana_check import GRID_COLUMNS, check, check_rules

Obj = dict[str, Any]


def shipped_text() -> str:
    return (resources.files("dashboards") / "appmixer-audit.ndjson").read_text(encoding="utf-8")


def shipped() -> list[Obj]:
    return [json.loads(line) for line in shipped_text().splitlines() if line.strip()]


def dump(objects: list[Any]) -> str:
    """NDJSON lines; a string item is written as it is (a line that is not JSON)."""
    return "".join((obj if isinstance(obj, str) else json.dumps(obj)) + "\n" for obj in objects)


def find(objects: list[Obj], object_type: str, object_id: str) -> Obj:
    for obj in objects:
        if obj["type"] == object_type and obj["id"] == object_id:
            return obj
    raise AssertionError(f"{object_type}:{object_id} is not in the file")


def edit_json(obj: Obj, path: str, change: Callable[[Any], Any]) -> None:
    """Decode a JSON-text attribute, change it, encode it again."""
    *parents, leaf = path.split(".")
    holder = obj["attributes"]
    for parent in parents:
        holder = holder[parent]
    holder[leaf] = json.dumps(change(json.loads(holder[leaf])))


def rules(text: str) -> set[str]:
    return {problem.rule for problem in check(text)}


def broken(change: Callable[[list[Obj]], None]) -> str:
    objects = shipped()
    change(objects)
    return dump(objects)


LOGS = ("dashboard", source.DASHBOARD_LOGS)
EVENT = ("dashboard", source.DASHBOARD_EVENT)


def logs(objects: list[Obj]) -> Obj:
    return find(objects, *LOGS)


def panel_of(panels: list[Obj], index: str) -> Obj:
    return next(item for item in panels if item["panelIndex"] == index)


class TestShippedFile:
    def test_passes_every_rule(self) -> None:
        """The shipped file has no problem at all."""
        assert [str(problem) for problem in check(shipped_text())] == []

    def test_is_the_build_of_its_source(self) -> None:
        """The committed file is exactly what devtools/dashboards.py renders."""
        assert shipped_text() == source.render()

    def test_holds_what_the_audit_logs_page_needs(self) -> None:
        """Two data views, two saved searches, the two dashboards with controls and panels."""
        objects = shipped()
        kinds = sorted((obj["type"], obj["id"]) for obj in objects)
        assert ("index-pattern", source.DV_EVENTS) in kinds
        assert ("index-pattern", source.DV_CHANGES) in kinds
        titles = {obj["attributes"]["title"] for obj in objects}
        assert {"Appmixer audit log", "Appmixer audit changes"} <= titles
        assert {"Appmixer Audit Logs", "Appmixer audit event"} <= titles
        group = logs(objects)["attributes"]["controlGroupInput"]
        controls = json.loads(group["panelsJSON"]).values()
        fields = {control["explicitInput"]["fieldName"] for control in controls}
        assert fields == {"appmixer.audit.type", "user.email", "appmixer.flow.id", "event.action"}
        assert {control["type"] for control in controls} == {"optionsListControl"}
        assert len(json.loads(logs(objects)["attributes"]["panelsJSON"])) == 5

    def test_the_table_is_every_event(self) -> None:
        """The events panel is the saved search: Action, User, Created, Event type, Flow ID,
        then the Event ID link, newest first; no Lens table of events, no drilldown."""
        dashboard = logs(shipped())
        names = {ref["name"]: ref for ref in dashboard["references"]}
        events = panel_of(json.loads(dashboard["attributes"]["panelsJSON"]), "events")
        assert events["type"] == "search"
        assert names["events:panel_events"] == {
            "type": "search",
            "id": source.SEARCH_LOG,
            "name": "events:panel_events",
        }
        table = find(shipped(), "search", source.SEARCH_LOG)["attributes"]
        assert table["columns"][:6] == [
            "message",
            "user.email",
            "@timestamp",
            "appmixer.audit.type",
            "appmixer.flow.id",
            "event.id",
        ]
        assert table["sort"] == [["@timestamp", "desc"]]
        assert "drilldown" not in json.dumps(dashboard)
        assert not [obj for obj in shipped() if "last_value" in json.dumps(obj)]

    def test_event_id_links_to_the_event_dashboard(self) -> None:
        """Both data views show event.id as a link, relative to Kibana's base path and space,
        opening the event dashboard in place with the id as its query."""
        for view_id in (source.DV_EVENTS, source.DV_CHANGES):
            view = find(shipped(), "index-pattern", view_id)["attributes"]
            link = json.loads(view["fieldFormatMap"])["event.id"]
            assert link["id"] == "url"
            template = link["params"]["urlTemplate"]
            assert template.startswith(f"dashboards#/view/{source.DASHBOARD_EVENT}?_a=(")
            assert "query:'event.id:%22{{value}}%22'" in template
            assert link["params"]["openLinkInCurrentTab"] is True

    def test_event_dashboard_alone_says_how_to_pick(self) -> None:
        """Opened alone: a text panel, and a query that matches no event; then the event's
        row, its diff and its states."""
        event = find(shipped(), *EVENT)["attributes"]
        query = json.loads(event["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]
        assert query == {"query": source.NO_EVENT_QUERY, "language": "kuery"}
        panels = json.loads(event["panelsJSON"])
        assert [item["panelIndex"] for item in panels] == [
            "pick-an-event",
            "details",
            "diff",
            "states",
        ]
        text = panels[0]["embeddableConfig"]["savedVis"]
        assert text["type"] == "markdown"
        assert "Event ID" in text["params"]["markdown"]


def drop_line(object_type: str, object_id: str) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        objects.remove(find(objects, object_type, object_id))

    return change


def edit_panels(index: str, change: Callable[[Obj], None]) -> Callable[[list[Obj]], None]:
    def apply(objects: list[Obj]) -> None:
        def edit(panels: list[Obj]) -> list[Obj]:
            change(panel_of(panels, index))
            return panels

        edit_json(logs(objects), "panelsJSON", edit)

    return apply


def drop_reference(key: tuple[str, str], name_part: str) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        obj = find(objects, *key)
        obj["references"] = [ref for ref in obj["references"] if name_part not in ref["name"]]

    return change


def set_grid(index: str, **grid: Any) -> Callable[[list[Obj]], None]:
    return edit_panels(index, lambda item: item["gridData"].update(grid))


def lens_column(lens_id: str, column: str, **values: Any) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        state = find(objects, "lens", lens_id)["attributes"]["state"]
        layer = state["datasourceStates"]["formBased"]["layers"][source.LAYER]
        layer["columns"][column].update(values)

    return change


def control_field(field: str) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        def edit(controls: Obj) -> Obj:
            controls["user"]["explicitInput"]["fieldName"] = field
            return controls

        edit_json(logs(objects), "controlGroupInput.panelsJSON", edit)

    return change


def search_attribute(search_id: str, **values: Any) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        find(objects, "search", search_id)["attributes"].update(values)

    return change


def dashboard_filter(change_filter: Callable[[list[Obj]], list[Obj]]) -> Callable[..., None]:
    def change(objects: list[Obj]) -> None:
        def edit(source_json: Obj) -> Obj:
            source_json["filter"] = change_filter(source_json["filter"])
            return source_json

        edit_json(logs(objects), "kibanaSavedObjectMeta.searchSourceJSON", edit)

    return change


def raw_attribute(key: tuple[str, str], path: str, value: Any) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        *parents, leaf = path.split(".")
        holder = find(objects, *key)["attributes"]
        for parent in parents:
            holder = holder[parent]
        holder[leaf] = value

    return change


def versions(key: tuple[str, str], **values: Any) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        obj = find(objects, *key)
        for name, value in values.items():
            if value is None:
                obj.pop(name)
            else:
                obj[name] = value

    return change


def add_drilldown(objects: list[Obj]) -> None:
    """A dashboard drilldown on the events panel, with its reference (so only the link rule
    can object)."""
    drilldown = "DASHBOARD_TO_DASHBOARD_DRILLDOWN"
    event = {
        "eventId": "open",
        "triggers": ["FILTER_TRIGGER"],
        "action": {"factoryId": drilldown, "name": "Open", "config": {}},
    }
    dynamic = {"dynamicActions": {"events": [event]}}
    edit_panels("events", lambda item: item["embeddableConfig"].update(enhancements=dynamic))(
        objects
    )
    name = f"events:drilldown:{drilldown}:open:dashboardId"
    logs(objects)["references"].append(
        {"type": "dashboard", "id": source.DASHBOARD_EVENT, "name": name}
    )


def link_template(template: str) -> Callable[[list[Obj]], None]:
    def change(objects: list[Obj]) -> None:
        def edit(formats: Obj) -> Obj:
            formats["event.id"]["params"]["urlTemplate"] = template
            return formats

        edit_json(find(objects, "index-pattern", source.DV_EVENTS), "fieldFormatMap", edit)

    return change


def rename_filter_key(filters: list[Obj]) -> list[Obj]:
    filters[0]["meta"]["key"] = "event.dataset"
    return filters


BROKEN: list[tuple[str, str, Callable[[list[Obj]], None]]] = [
    ("parse", "a line that is not JSON", lambda objects: objects.append("{not json")),  # type: ignore[arg-type]
    (
        "type",
        "a type the file does not ship",
        lambda objects: objects.append(
            {**find(objects, "index-pattern", source.DV_EVENTS), "type": "canvas-workpad"}
        ),
    ),
    (
        "unique",
        "the same type and id twice",
        lambda objects: objects.append(dict(find(objects, "index-pattern", source.DV_EVENTS))),
    ),
    ("reference", "a data view left out", drop_line("index-pattern", source.DV_CHANGES)),
    (
        "ref-name",
        "a panelRefName with no reference",
        edit_panels("top-users", lambda item: item.update(panelRefName="panel_gone")),
    ),
    (
        "ref-name",
        "a control with no data view reference",
        drop_reference(LOGS, "controlGroup_user:"),
    ),
    (
        "ref-name",
        "a panel with neither a reference nor text",
        edit_panels("top-users", lambda item: item.pop("panelRefName")),
    ),
    (
        "ref-name",
        "a search whose indexRefName has no reference",
        drop_reference(("search", source.SEARCH_LOG), "searchSourceJSON.index"),
    ),
    (
        "ref-name",
        "a Lens layer with no data view reference",
        drop_reference(("lens", source.LENS_TOP_USERS), "indexpattern-datasource-layer"),
    ),
    (
        "json-string",
        "panelsJSON written as an array",
        raw_attribute(LOGS, "panelsJSON", json.loads(json.dumps([]))),
    ),
    (
        "json-string",
        "controlGroupInput.panelsJSON that does not parse",
        raw_attribute(LOGS, "controlGroupInput.panelsJSON", "{broken"),
    ),
    (
        "json-string",
        "searchSourceJSON as an object",
        raw_attribute(
            ("search", source.SEARCH_CHANGES),
            "kibanaSavedObjectMeta.searchSourceJSON",
            {"query": {"query": "", "language": "kuery"}},
        ),
    ),
    (
        "attributes",
        "a controlGroupInput key the 8.11 schema refuses",
        raw_attribute(LOGS, "controlGroupInput.showApplySelections", True),
    ),
    ("attributes", "an unknown dashboard attribute", raw_attribute(LOGS, "sections", [])),
    ("grid", "a panel past column 48", set_grid("top-users", x=40)),
    ("grid", "two panels overlapping", set_grid("top-users", x=20)),
    ("grid", "gridData.i unlike panelIndex", set_grid("events", i="other")),
    ("field", "a control on a text field", control_field("message")),
    ("field", "a control on an unmapped field", control_field("user.nickname")),
    (
        "field",
        "a column that is not mapped",
        search_attribute(source.SEARCH_CHANGES, columns=["appmixer.change.path", "change.path"]),
    ),
    (
        "field",
        "a sort on a stored-only object",
        search_attribute(source.SEARCH_LOG, sort=[["appmixer.audit.before", "desc"]]),
    ),
    (
        "field",
        "terms on a stored-only object",
        lens_column(source.LENS_TOP_USERS, "user", sourceField="appmixer.audit.data"),
    ),
    (
        "field",
        "a date histogram over a keyword",
        lens_column(source.LENS_OVER_TIME, "time", sourceField="user.email"),
    ),
    (
        "field",
        "a Lens query on an unmapped field",
        lambda objects: find(objects, "lens", source.LENS_FAILED_LOGINS)["attributes"]["state"][
            "query"
        ].update(query='event.code : "x"'),
    ),
    (
        "row-cap",
        "a Lens table with one row per event id",
        lens_column(source.LENS_FAILED_LOGINS, "user", sourceField="event.id"),
    ),
    (
        "aggregation",
        "a last_value column (top_metrics)",
        lens_column(
            source.LENS_FAILED_LOGINS,
            "last",
            operationType="last_value",
            sourceField="user.email",
            params={"sortField": "@timestamp"},
        ),
    ),
    ("link", "a dashboard drilldown on the events panel", add_drilldown),
    (
        "link",
        "a link rooted at /app, which misses the base path and space",
        link_template("/app/" + source.DETAILS_URL),
    ),
    (
        "link",
        "a link to a dashboard not in the file",
        link_template(source.DETAILS_URL.replace(source.DASHBOARD_EVENT, "gone")),
    ),
    (
        "link",
        "the events table without the Event ID column",
        search_attribute(source.SEARCH_LOG, columns=["message", "user.email", "@timestamp"]),
    ),
    (
        "filter",
        "a dashboard without a data_stream.dataset filter",
        dashboard_filter(rename_filter_key),
    ),
    (
        "version",
        "a dashboard model version 8.11 does not know",
        versions(LOGS, typeMigrationVersion="10.2.0"),
    ),
    ("version", "no coreMigrationVersion", versions(EVENT, coreMigrationVersion=None)),
    (
        "version",
        "a search version newer than the floor",
        versions(("search", source.SEARCH_LOG), typeMigrationVersion="10.5.0"),
    ),
]


class TestBrokenCopies:
    @pytest.mark.parametrize(
        ("rule", "change"),
        [(rule, change) for rule, _what, change in BROKEN],
        ids=[f"{rule}: {what}" for rule, what, _change in BROKEN],
    )
    def test_fails_for_its_rule(self, rule: str, change: Callable[[list[Obj]], None]) -> None:
        """Each broken copy fails the rule it targets, and no other."""
        text = broken(change)
        assert rules(text) == {rule}, [str(problem) for problem in check(text)]

    def test_every_rule_has_a_broken_copy(self) -> None:
        """No rule of the checker goes untested."""
        assert {rule for rule, _what, _change in BROKEN} == {
            "parse",
            "type",
            "unique",
            "reference",
            "ref-name",
            "json-string",
            "attributes",
            "grid",
            "field",
            "filter",
            "version",
            "row-cap",
            "aggregation",
            "link",
        }

    def test_grid_width_is_kibanas(self) -> None:
        """Kibana's dashboard grid has 48 columns."""
        assert GRID_COLUMNS == 48


def rule_lines() -> list[Obj]:
    text = rule_source.IMPORT_FILE.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def without_ecs(rules: list[Obj]) -> None:
    for entry in rules[0]["required_fields"]:
        entry.pop("ecs")


BROKEN_RULES: list[tuple[str, str, Callable[[list[Obj]], None]]] = [
    ("rule-parse", "a line that is no rule", lambda rules: rules[0].pop("rule_id")),
    ("required-fields", "required_fields without ecs (Kibana 8.12 refused it)", without_ecs),
    (
        "required-fields",
        "a required field without a type",
        lambda rules: rules[1]["required_fields"][0].pop("type"),
    ),
    (
        "timestamp-override",
        "no timestamp_override",
        lambda rules: rules[2].pop("timestamp_override"),
    ),
    (
        "timestamp-override",
        "timestamp_override on @timestamp",
        lambda rules: rules[3].update(timestamp_override="@timestamp"),
    ),
]


class TestRulesFile:
    def test_shipped_rules_pass(self) -> None:
        text = rule_source.IMPORT_FILE.read_text(encoding="utf-8")
        assert [str(problem) for problem in check_rules(text)] == []

    @pytest.mark.parametrize(
        ("rule", "change"),
        [(rule, change) for rule, _what, change in BROKEN_RULES],
        ids=[f"{rule}: {what}" for rule, what, _change in BROKEN_RULES],
    )
    def test_fails_for_its_rule(self, rule: str, change: Callable[[list[Obj]], None]) -> None:
        rules = rule_lines()
        change(rules)
        text = dump(rules)
        assert {problem.rule for problem in check_rules(text)} == {rule}
