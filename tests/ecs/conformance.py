"""Documents and mappings checked against the official ECS definitions (pure functions).

ECS says what a field of one of its field sets is called and what type it has, and for the
categorization fields which values are allowed and which ``event.type`` values each
``event.category`` expects. Our own fields live under ``appmixer.*``; ``log.offset``
(Filebeat's convention, not an ECS field) is the one other name allowed. Each check returns
problems as lines of text, empty when all is well, so a failure names every mistake at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from indexer.fields import Field
from tests.ecs.schema import EcsField, EcsSchema

CUSTOM_PREFIX = "appmixer."
NOT_ECS_BUT_CONVENTIONAL = frozenset({"log.offset"})  # Filebeat's byte offset of the line
CONTAINER_TYPES = frozenset({"object", "flattened", "nested"})  # any leaf inside is theirs


def covering(schema: EcsSchema, name: str) -> EcsField | None:
    """The ECS field ``name`` is, or the ECS object/flattened field it is a leaf of."""
    found = schema.fields.get(name)
    if found is not None:
        return found
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        parent = schema.fields.get(".".join(parts[:end]))
        if parent is not None and parent.type in CONTAINER_TYPES:
            return parent
    return None


def field_problems(name: str, mapped: Mapping[str, Field], schema: EcsSchema) -> list[str]:
    """One field name: ours under appmixer.*, else ECS's, mapped with ECS's type."""
    if name.startswith(CUSTOM_PREFIX) or name in NOT_ECS_BUT_CONVENTIONAL:
        return []
    ecs = covering(schema, name)
    if ecs is None:
        return [f"{name}: not an ECS field, and custom fields belong under appmixer.*"]
    if ecs.name != name:
        return []  # a leaf inside an ECS object or flattened field
    mapping = mapped.get(name)
    if mapping is None:
        return [f"{name}: an ECS field that mappings/ does not map"]
    problems = []
    if mapping.type != ecs.type:
        problems.append(
            f"{name}: mappings/ says {mapping.type}, ECS {schema.version} says {ecs.type}"
        )
    for suffix, sub_type in mapping.subfields:
        expected = ecs.multi_fields.get(suffix)
        if expected is not None and expected != sub_type:
            problems.append(f"{name}.{suffix}: mappings/ says {sub_type}, ECS says {expected}")
    return problems


def mapping_problems(mapped: Mapping[str, Field], schema: EcsSchema) -> list[str]:
    """Every mapped field of a target."""
    return [problem for name in mapped for problem in field_problems(name, mapped, schema)]


def leaves(document: Mapping[str, Any], mapped: Mapping[str, Field]) -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of each field a document writes; a mapped leaf (a flattened or
    stored-only object) is one field, whatever it holds."""
    stack: list[tuple[str, Any]] = [(str(key), value) for key, value in document.items()]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping) and path not in mapped:
            stack.extend((f"{path}.{key}", inner) for key, inner in value.items())
        elif value is not None:
            yield path, value


class Checker:
    """Checks documents of one target; verdicts on names are kept, as names repeat."""

    def __init__(self, mapped: Mapping[str, Field], schema: EcsSchema) -> None:
        self.mapped = mapped
        self.schema = schema
        self._names: dict[str, list[str]] = {}

    def __call__(self, document: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        for name, value in leaves(document, self.mapped):
            verdict = self._names.get(name)
            if verdict is None:
                verdict = self._names[name] = field_problems(name, self.mapped, self.schema)
            problems.extend(verdict)
            ecs = self.schema.fields.get(name)
            if ecs is not None and ecs.array and not isinstance(value, list):
                problems.append(f"{name}: ECS expects an array, the document has {value!r}")
        problems.extend(self.categorization(document))
        claimed = _get(document, "ecs.version")
        if claimed is not None and claimed != self.schema.version:
            problems.append(f"ecs.version: claims {claimed}, checked against {self.schema.version}")
        return problems

    def categorization(self, document: Mapping[str, Any]) -> list[str]:
        """Allowed values, and each event.type expected by one of the event's categories."""
        problems = []
        values: dict[str, list[Any]] = {}
        for name in ("event.kind", "event.category", "event.type", "event.outcome"):
            raw = _get(document, name)
            values[name] = [] if raw is None else raw if isinstance(raw, list) else [raw]
            allowed = self.schema.allowed(name)
            problems.extend(
                f"{name}: {value!r} is not an allowed value"
                for value in values[name]
                if value not in allowed
            )
        categories = self.schema.allowed("event.category")
        expected = {
            kind for category in values["event.category"] for kind in categories.get(category, ())
        }
        if category := values["event.category"]:
            problems.extend(
                f"event.type: {kind!r} is not expected for event.category {category}"
                for kind in values["event.type"]
                if kind not in expected
            )
        return problems


def _get(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
