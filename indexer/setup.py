"""Install the index: templates, lifecycle policy, roles and targets, as the cluster allows.

Every sidecar runs this at start, so it must be idempotent and safe when several run at once.
Each resource carries a digest of its rendered body in its metadata: a resource whose digest
matches is left alone (``unchanged``, not even re-PUT), any other is PUT whole, which is
itself idempotent, so two concurrent runs converge on the same state. Targets are created
eagerly only where that is possible, and "already exists" is never an error.

What the cluster lacks is detected (``indexer.capabilities``), never assumed: the rendering
below is a pure function of those capabilities, so each variant is testable without a node.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from elasticsearch import ApiError, Elasticsearch, NotFoundError

import mappings
from indexer.capabilities import Capabilities, detect
from indexer.cluster import reason_of
from indexer.fields import INDEX_TEMPLATES

Status = Literal["installed", "updated", "unchanged", "skipped", "failed"]

LIFECYCLE_POLICY = "appmixer-audit"
SETTINGS_COMPONENT = "appmixer-audit@settings"
DEFAULT_RETENTION = "365d"
_RETENTION = re.compile(r"^[1-9][0-9]*(d|h|m|s)$")
_JSON = {"accept": "application/json", "content-type": "application/json"}

# A field type some distributions lack -> the core type that stores the same values.
FALLBACK_TYPES = {"match_only_text": "text", "constant_keyword": "keyword", "wildcard": "keyword"}
_KEYWORD_IGNORE_ABOVE = 1024

# Per kind: the REST path of one resource (GET to compare digests, PUT to install).
_PATHS: dict[mappings.Kind, str] = {
    "component": "/_component_template/{}",
    "index": "/_index_template/{}",
    "lifecycle": "/_ilm/policy/{}",
    "roles": "/_security/role/{}",
}


@dataclass(frozen=True)
class Step:
    """One thing setup looked at, what it did and why."""

    kind: str
    name: str
    status: Status
    detail: str = ""


@dataclass
class SetupReport:
    capabilities: Capabilities
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.status != "failed" for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "capabilities": self.capabilities.as_dict(),
            "steps": [asdict(step) for step in self.steps],
        }

    def lines(self) -> list[str]:
        width = max((len(step.kind) for step in self.steps), default=0)
        rows = [self.capabilities.summary()]
        for step in self.steps:
            detail = f": {step.detail}" if step.detail else ""
            rows.append(f"{step.status:<9}  {step.kind:<{width}}  {step.name}{detail}")
        return rows


@dataclass(frozen=True)
class Resource:
    """A rendered body ready to PUT, with the digest that says whether it changed."""

    kind: mappings.Kind
    name: str
    body: dict[str, Any]
    digest: str


def validate_retention(retention: str) -> str:
    """A retention as Elasticsearch time units (``365d``, ``12h``); ValueError otherwise."""
    if not _RETENTION.match(retention):
        raise ValueError(f"retention {retention!r} must be a whole number of d, h, m or s")
    return retention


def substitute_types(properties: dict[str, Any], available: set[str]) -> dict[str, Any]:
    """A copy of mapping properties with each type the cluster lacks replaced by its core
    fallback; a keyword fallback keeps the ``ignore_above`` every keyword here has."""
    result: dict[str, Any] = {}
    for name, original in properties.items():
        spec = dict(original)
        if "properties" in spec:
            spec["properties"] = substitute_types(spec["properties"], available)
        if "fields" in spec:
            spec["fields"] = substitute_types(spec["fields"], available)
        field_type = spec.get("type")
        if field_type in FALLBACK_TYPES and field_type not in available:
            spec["type"] = FALLBACK_TYPES[field_type]
            if spec["type"] == "keyword":
                spec.setdefault("ignore_above", _KEYWORD_IGNORE_ABOVE)
        result[name] = spec
    return result


def _digest(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _meta(kind: mappings.Kind, body: dict[str, Any]) -> dict[str, Any]:
    """The metadata object of a body, where the digest is kept."""
    if kind == "lifecycle":
        meta: dict[str, Any] = body["policy"].setdefault("_meta", {})
    elif kind == "roles":
        meta = body.setdefault("metadata", {})
    else:
        meta = body.setdefault("_meta", {})
    return meta


def make_resource(kind: mappings.Kind, name: str, body: dict[str, Any]) -> Resource:
    """A resource whose metadata carries the digest of its body (taken before adding it)."""
    digest = _digest(body)
    _meta(kind, body)["digest"] = digest
    return Resource(kind, name, body, digest)


def render(capabilities: Capabilities, *, retention: str = DEFAULT_RETENTION) -> list[Resource]:
    """Everything to install on a cluster with these capabilities, in install order."""
    validate_retention(retention)
    available = set(capabilities.field_types)
    with_lifecycle = capabilities.lifecycle and capabilities.data_streams
    rendered: list[Resource] = []
    for name, body in mappings.load_all("component").items():
        template = body.setdefault("template", {})
        if "mappings" in template and "properties" in template["mappings"]:
            props = template["mappings"]["properties"]
            template["mappings"]["properties"] = substitute_types(props, available)
        if name == SETTINGS_COMPONENT and with_lifecycle:
            index_settings = template.setdefault("settings", {}).setdefault("index", {})
            index_settings["lifecycle"] = {"name": LIFECYCLE_POLICY}
        rendered.append(make_resource("component", name, body))
    if with_lifecycle:
        policy = mappings.load("lifecycle", LIFECYCLE_POLICY)
        policy["policy"]["phases"]["delete"]["min_age"] = retention
        rendered.append(make_resource("lifecycle", LIFECYCLE_POLICY, policy))
    for name, body in mappings.load_all("index").items():
        if capabilities.data_streams:
            body["data_stream"] = {}
        rendered.append(make_resource("index", name, body))
    if capabilities.security:
        for name, body in mappings.load_all("roles").items():
            rendered.append(make_resource("roles", name, body))
    return rendered


def skipped(capabilities: Capabilities, kibana_url: str | None) -> list[Step]:
    """What this cluster (or these options) rule out, and why."""
    steps: list[Step] = []
    policy = mappings.KIND_LABELS["lifecycle"]
    if not capabilities.lifecycle:
        reason = "this cluster has no index lifecycle management"
        steps.append(Step(policy, LIFECYCLE_POLICY, "skipped", reason))
    elif not capabilities.data_streams:
        reason = "rollover needs data streams, which this cluster lacks"
        steps.append(Step(policy, LIFECYCLE_POLICY, "skipped", reason))
    if not capabilities.security:
        for name in mappings.names("roles"):
            reason = "security is not enabled on this cluster"
            steps.append(Step(mappings.KIND_LABELS["roles"], name, "skipped", reason))
    if kibana_url is None:  # with a URL, the import is its own step (indexer.kibana)
        steps.append(Step("dashboards", "kibana", "skipped", "no Kibana URL given"))
    return steps


def install(
    es: Elasticsearch,
    events_target: str,
    changes_target: str,
    *,
    retention: str = DEFAULT_RETENTION,
    kibana_url: str | None = None,
    capabilities: Capabilities | None = None,
) -> SetupReport:
    """Install what this cluster supports and say, per item, what happened and why."""
    caps = capabilities if capabilities is not None else detect(es)
    report = SetupReport(caps)
    for resource in render(caps, retention=retention):
        report.steps.append(apply_resource(es, resource))
    templates_changed = any(
        step.status in {"installed", "updated"}
        for step in report.steps
        if step.kind in {"component template", "index template"}
    )
    templates = _index_templates(es)
    for target, ours in (
        (events_target, INDEX_TEMPLATES["events"]),
        (changes_target, INDEX_TEMPLATES["changes"]),
    ):
        winner = winning_template(templates, target)
        if winner is not None and winner[0] != ours:
            report.steps.append(_outranked(caps, target, ours, winner))
        else:
            report.steps.append(_ensure_target(es, caps, target, templates_changed))
    report.steps.extend(skipped(caps, kibana_url))
    return report


def _outranked(caps: Capabilities, target: str, ours: str, winner: tuple[str, int]) -> Step:
    kind = "data stream" if caps.data_streams else "index"
    reason = (
        f"index template {winner[0]} (priority {winner[1]}) outranks {ours} for this name, "
        "so its mapping would apply instead: delete it or lower its priority"
    )
    return Step(kind, target, "failed", reason)


def winning_template(templates: list[dict[str, Any]], name: str) -> tuple[str, int] | None:
    """The index template Elasticsearch would apply to a new index of this name, as
    (name, priority): the highest priority among those with a matching pattern."""
    matching = [
        (str(item["name"]), int(item["index_template"].get("priority", 0)))
        for item in templates
        if any(fnmatchcase(name, pattern) for pattern in item["index_template"]["index_patterns"])
    ]
    return max(matching, key=lambda found: found[1], default=None)


def _index_templates(es: Elasticsearch) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = es.indices.get_index_template().body["index_templates"]
    except NotFoundError:
        return []
    return found


def _current_digest(es: Elasticsearch, resource: Resource) -> str | None:
    """The digest the installed copy carries: None if absent, "" if not ours (no digest)."""
    path = _PATHS[resource.kind].format(resource.name)
    try:
        body = es.perform_request("GET", path, headers=_JSON).body
    except NotFoundError:
        return None
    if resource.kind == "component":
        found = body["component_templates"][0]["component_template"]
    elif resource.kind == "index":
        found = body["index_templates"][0]["index_template"]
    elif resource.kind == "lifecycle":
        found = body[resource.name]  # {"version": .., "policy": {.., "_meta": ..}}
    else:
        found = body.get(resource.name)
        if found is None:  # GET of a missing role answers 200 with {}
            return None
    digest = _meta(resource.kind, copy.deepcopy(found)).get("digest")
    return str(digest) if digest is not None else ""


def apply_resource(es: Elasticsearch, resource: Resource) -> Step:
    label = mappings.KIND_LABELS[resource.kind]
    try:
        current = _current_digest(es, resource)
        if current == resource.digest:
            return Step(label, resource.name, "unchanged")
        path = _PATHS[resource.kind].format(resource.name)
        es.perform_request("PUT", path, body=resource.body, headers=_JSON)
    except ApiError as exc:
        return Step(label, resource.name, "failed", error_reason(exc))
    status: Status = "installed" if current is None else "updated"
    return Step(label, resource.name, status)


def error_reason(exc: ApiError) -> str:
    """The innermost reason Elasticsearch gave: the one that names the actual problem."""
    return reason_of(exc)


def _is_already_exists(exc: ApiError) -> bool:
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    return isinstance(error, dict) and error.get("type") == "resource_already_exists_exception"


def _resolve(es: Elasticsearch, target: str) -> Literal["missing", "data stream", "index"]:
    try:
        # GET: 8.x answers only GET here; the 9.x client's resolve_index may POST.
        found = es.perform_request("GET", f"/_resolve/index/{target}", headers=_JSON).body
    except NotFoundError:
        return "missing"
    if any(item["name"] == target for item in found.get("data_streams", [])):
        return "data stream"
    return "index" if found.get("indices") or found.get("aliases") else "missing"


def _ensure_target(
    es: Elasticsearch, caps: Capabilities, target: str, templates_changed: bool
) -> Step:
    kind = "data stream" if caps.data_streams else "index"
    try:
        state = _resolve(es, target)
        if state == "missing":
            return _create_target(es, caps, target, kind)
        if state != kind:
            reason = (
                f"exists as a {state}, not a {kind}: it was created before setup ran, "
                "so its mapping is not the managed one; reindex it into a fresh target"
            )
            return Step(kind, target, "failed", reason)
        if templates_changed and caps.data_streams:
            # A rollover now, not a lazy one: 8.12 has no lazy rollover, and on distributions
            # without the data streams module (8.x integ-test) a lazy one never happens.
            es.indices.rollover(alias=target)
            reason = "rolled over: the new mapping applies from its next write"
            return Step(kind, target, "updated", reason)
        if templates_changed:
            reason = "the existing index keeps its mapping; new fields need a reindex"
            return Step(kind, target, "unchanged", reason)
        return Step(kind, target, "unchanged", "exists")
    except ApiError as exc:
        return Step(kind, target, "failed", error_reason(exc))


def _create_target(es: Elasticsearch, caps: Capabilities, target: str, kind: str) -> Step:
    if caps.data_streams and not caps.data_stream_api:
        reason = "becomes a data stream on its first write (this cluster has no data stream API)"
        return Step(kind, target, "skipped", reason)
    try:
        if caps.data_stream_api:
            es.indices.create_data_stream(name=target)
            how = "data stream created"
        else:
            es.indices.create(index=target)
            how = "plain index created (this cluster has no data streams)"
    except ApiError as exc:
        if _is_already_exists(exc):  # a concurrent setup or a first write won the race
            return Step(kind, target, "unchanged", "exists")
        raise
    return Step(kind, target, "installed", how)
