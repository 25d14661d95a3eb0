"""The mapped fields of each target, derived from ``mappings/`` so no code repeats a name.

The search command picks its query per field type from here, the tests check the
normalizer's output against it, and the dashboards can list it. Types are those written in
the JSON (the preferred ones, e.g. ``match_only_text``); setup may substitute a type the
cluster lacks, which changes how a field is stored, never its name.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import mappings

Target = Literal["events", "changes"]
TARGETS: tuple[Target, ...] = ("events", "changes")

# The index template that shapes each target (mappings/index/<name>.json).
INDEX_TEMPLATES: dict[Target, str] = {
    "events": "logs-appmixer.audit",
    "changes": "logs-appmixer.audit_changes",
}

TEXT_TYPES = frozenset({"text", "match_only_text"})
KEYWORD_TYPES = frozenset({"keyword", "constant_keyword", "wildcard"})


@dataclass(frozen=True)
class Field:
    """One mapped leaf: a name documents write, with its type."""

    name: str
    type: str
    indexed: bool  # False for values stored in _source only (objects with enabled: false)
    subfields: tuple[tuple[str, str], ...] = ()  # multi-fields: (suffix, type)

    def subfield(self, types: frozenset[str]) -> str | None:
        """The full name of the first multi-field of one of ``types``, if any."""
        for suffix, field_type in self.subfields:
            if field_type in types:
                return f"{self.name}.{suffix}"
        return None


def merge_properties(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge mapping properties as Elasticsearch composes templates: later ones win."""
    for name, spec in extra.items():
        current = target.get(name)
        if isinstance(current, dict) and "properties" in current and "properties" in spec:
            merged = {key: value for key, value in spec.items() if key != "properties"}
            merged["properties"] = dict(current["properties"])
            merge_properties(merged["properties"], spec["properties"])
            target[name] = {**current, **merged}
        else:
            target[name] = spec


@cache
def _composed(target: Target) -> dict[str, Any]:
    template = mappings.load("index", INDEX_TEMPLATES[target])
    available = set(mappings.names("component"))
    composed: dict[str, Any] = {"properties": {}}
    for component in template["composed_of"]:
        if component not in available:  # the user's own @custom, absent by design
            continue
        body = mappings.load("component", component)["template"].get("mappings", {})
        for key, value in body.items():
            if key != "properties":
                composed[key] = value
        merge_properties(composed["properties"], body.get("properties", {}))
    return composed


def composed_mappings(target: Target) -> dict[str, Any]:
    """The target's mappings as the index template composes them (a copy)."""
    return copy.deepcopy(_composed(target))


def walk(properties: Mapping[str, Any], prefix: str = "") -> Iterator[Field]:
    """The leaves of mapping properties (as written here or as a node returns them)."""
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        field_type = spec.get("type", "object")
        if "properties" in spec and field_type in {"object", "nested"}:
            yield from walk(spec["properties"], f"{path}.")
            continue
        subfields = tuple((key, sub["type"]) for key, sub in spec.get("fields", {}).items())
        indexed = spec.get("enabled", True) is not False and spec.get("index", True) is not False
        yield Field(path, field_type, indexed, subfields)


@cache
def mapped_fields(target: Target) -> dict[str, Field]:
    """Every mapped leaf of a target by dotted name, in mapping order."""
    return {field.name: field for field in walk(_composed(target)["properties"])}


def field(target: Target, name: str) -> Field:
    """One mapped field; a KeyError names the target so a typo is found at once."""
    try:
        return mapped_fields(target)[name]
    except KeyError:
        raise KeyError(f"{name} is not mapped in the {target} target") from None


def document_paths(document: Mapping[str, Any], target: Target) -> set[str]:
    """The leaf paths a document writes, seen as the target's mapping sees them.

    Descending stops at a mapped leaf, so the inside of a ``flattened`` or a stored-only
    object counts as that one field; lists are looked into, as Elasticsearch does.
    """
    leaves = mapped_fields(target)
    found: set[str] = set()

    def visit(value: Any, path: str) -> None:
        if value is None:  # Elasticsearch indexes nothing for null or an empty list
            return
        if isinstance(value, list):
            for item in value:
                visit(item, path)
        elif path in leaves or not isinstance(value, Mapping):
            found.add(path)
        else:
            for key, inner in value.items():
                visit(inner, f"{path}.{key}" if path else str(key))

    visit(document, "")
    return found
