"""The import contracts in ``pyproject.toml`` hold, and they do fail on a cycle.

Each broken case copies the packages into a temporary directory, adds one import that closes
a cycle (or crosses a boundary), and runs ``lint-imports`` on the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"lint-imports is missing next to {sys.executable}")
        pytest.skip("lint-imports is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "500"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def add_import(tree: Path, module: str, statement: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{statement}  # the broken edge\n")


class TestImportContracts:
    def test_the_tree_keeps_every_contract(self, tmp_path: Path) -> None:
        """An untouched copy of the packages keeps all contracts."""
        result = lint_imports(copy_tree(tmp_path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout

    @pytest.mark.parametrize(
        ("module", "statement", "contract"),
        [
            (
                "indexer/dedup.py",
                "from indexer import sink as _sink",
                "No import cycles between the modules of any package",
            ),
            (
                "common/retry.py",
                "import agent.pipeline",
                "Layers: CLI, then pipeline",
            ),
            (
                "indexer/sink.py",
                "import agent.files",
                "Layers: CLI, then pipeline",
            ),
            (
                "agent/files/tailer.py",
                "import devtools.simulate",
                "Layers: CLI, then pipeline",
            ),
            (
                "indexer/setup.py",
                "import agent.config",
                "The indexer and the chain never import the agent",
            ),
            (
                "chain/link.py",
                "import agent.normalize",
                "The indexer and the chain never import the agent",
            ),
            (
                "cli/run.py",
                "import devtools.devnode",
                "The runtime path never imports the development tools",
            ),
            (
                "agent/config.py",
                "import cli.options",
                "Top-level packages in layers",
            ),
            (
                "agent/normalize/catalog.py",
                "import devtools.simulate",
                "Top-level packages in layers",
            ),
            (
                "agent/evidence/chains.py",
                "import agent.reader",
                "Layers: CLI, then pipeline",
            ),
        ],
    )
    def test_a_cycle_or_crossing_breaks_a_contract(
        self, tmp_path: Path, module: str, statement: str, contract: str
    ) -> None:
        """One added import that closes a cycle or crosses a boundary fails lint-imports."""
        tree = copy_tree(tmp_path)
        add_import(tree, module, statement)
        result = lint_imports(tree)
        assert result.returncode != 0, result.stdout
        broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
        assert [line for line in broken if line.startswith(contract)], result.stdout
