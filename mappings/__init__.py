"""The JSON that defines the index: component and index templates, lifecycle policy, roles.

These files are the single source of truth for field names and types. Code reads them here
(setup installs them, ``indexer.fields`` derives the field list from them) and never repeats
them. Each kind lives in its own folder; a resource's name is its file name without
``.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

Kind = Literal["component", "index", "lifecycle", "roles"]

# Where Elasticsearch knows each resource, by kind (used in reports and docs).
KIND_LABELS: dict[Kind, str] = {
    "component": "component template",
    "index": "index template",
    "lifecycle": "lifecycle policy",
    "roles": "role",
}

# Installed in this order: an index template needs its component templates first.
KINDS: tuple[Kind, ...] = ("component", "lifecycle", "index", "roles")


def names(kind: Kind) -> list[str]:
    """The resource names of one kind, sorted, so installs and reports are stable."""
    folder = resources.files(__name__) / kind
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    )


def load(kind: Kind, name: str) -> dict[str, Any]:
    """A fresh copy of one resource's JSON body (callers may change it freely)."""
    text = (resources.files(__name__) / kind / f"{name}.json").read_text(encoding="utf-8")
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError(f"mappings/{kind}/{name}.json must hold a JSON object")
    return body


def load_all(kind: Kind) -> dict[str, dict[str, Any]]:
    return {name: load(kind, name) for name in names(kind)}
