"""What the code and the docs point at exists, and the architecture doc says what the import
contracts enforce.

- Every repository path named in the code or the docs (``agent/acks.py``, ``docs/chain.md``)
  is a file or folder of the repository, and every module named in backquotes
  (``agent.evidence.keeper.ChainedStore``) imports, down to the attribute named.
- The layers of ``docs/architecture.md`` are the layers of the import contracts, module for
  module, in the same order.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "agent", "indexer", "chain", "common", "devtools")
FOLDERS = (*PACKAGES, "mappings", "dashboards", "tests", "docs", "bench", "deploy")
# Where paths are named: the code, the tests, the docs. The changelog is history: it names
# what was there at the time.
SOURCES = [
    *(p for package in (*PACKAGES, "tests", "bench") for p in (ROOT / package).rglob("*.py")),
    *(ROOT / "docs").glob("*.md"),
    ROOT / "README.md",
]
PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(FOLDERS) + r")/[\w./-]*\w)")
MODULE = re.compile(r"`((?:" + "|".join(PACKAGES) + r")(?:\.\w+)+)`")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]


def named_paths() -> list[tuple[str, str]]:
    found = []
    for source in SOURCES:
        text = source.read_text(encoding="utf-8")
        for match in PATH.finditer(text):
            path = match.group(1)
            if "*" in path or "<" in path:
                continue
            found.append((str(source.relative_to(ROOT)), path))
    return found


# Backquoted names that look dotted but are no module: file names, ECS fields of the agent.
NOT_MODULES = re.compile(r"\.(md|json|ndjson|py|toml|ya?ml|txt)$|^agent\.(type|version|name|id)$")


def named_modules() -> list[tuple[str, str]]:
    return [
        (str(source.relative_to(ROOT)), match.group(1))
        for source in SOURCES
        for match in MODULE.finditer(source.read_text(encoding="utf-8"))
        if not NOT_MODULES.search(match.group(1))
    ]


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or an attribute path inside one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def test_every_path_named_exists() -> None:
    missing = sorted({(where, path) for where, path in named_paths() if not (ROOT / path).exists()})
    assert missing == []


def test_every_module_named_imports() -> None:
    broken = sorted({(where, name) for where, name in named_modules() if not resolves(name)})
    assert broken == []


def test_no_file_outside_the_repository_is_cited() -> None:
    """The design notes the project started from are not part of it: the repository's own
    docs are cited instead."""
    outside = "DESIGN" + ".md"
    citing = [str(s.relative_to(ROOT)) for s in SOURCES if outside in s.read_text()]
    assert citing == []


def doc_layers(heading: str, column: int) -> list[list[str]]:
    """The backquoted names in one column of the table under ``heading``, row by row."""
    lines = (ROOT / "docs" / "architecture.md").read_text().splitlines()
    rows = []
    for line in lines[lines.index(heading) + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(re.findall(r"`([\w.]+)`", line.strip("|").split(" | ")[column]))
    return rows


def contract(name: str) -> list[list[str]]:
    (found,) = [c for c in CONTRACTS if c["name"].startswith(name)]
    return [[m.strip() for m in layer.split("|")] for layer in found["layers"]]


@pytest.mark.parametrize(
    ("heading", "column", "name"),
    [
        ("| package | imports |", 0, "Top-level packages in layers"),
        ("| layer | modules | job |", 1, "Layers: CLI, then pipeline"),
    ],
)
def test_the_documented_layers_are_the_contract(heading: str, column: int, name: str) -> None:
    assert doc_layers(heading, column) == contract(name)
