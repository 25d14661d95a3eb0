"""Which build of the per-line path the agent processes of a test session run.

The pytest process itself always imports the source: it is the reference. The agents that
tests start as processes (``python -m agent ...``) run the build named by
``APPMIXER_AUDIT_TEST_BUILD``: ``pure`` (the default) or ``compiled``, the tree made by
``make compiled`` (``build/compiled``, or ``APPMIXER_AUDIT_COMPILED_TREE``). For the compiled
build, the session's environment gets ``PYTHONPATH`` set to that tree and ``PYTHONSAFEPATH``
(so ``-m`` does not put the working directory, the source, first); every child inherits both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_VAR = "APPMIXER_AUDIT_TEST_BUILD"
TREE_VAR = "APPMIXER_AUDIT_COMPILED_TREE"


def compiled_tree(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Where the compiled build is looked for (it may not be there)."""
    return Path(environ.get(TREE_VAR) or ROOT / "build" / "compiled")


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that makes ``python -m agent`` import from ``tree``."""
    return {"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}


def build_in(env: dict[str, str]) -> str | None:
    """The build a child interpreter with this environment loads, or None when it fails."""
    probe = (
        "import agent.build as b; assert b.builds() == {b.build() == 'compiled'}; print(b.build())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT.parent,
        timeout=120,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def compiled_env(environ: MutableMapping[str, str] = os.environ) -> dict[str, str] | None:
    """The child environment of the compiled build, or None when it is not built here."""
    env = tree_env(compiled_tree(environ))
    return env if build_in(env) == "compiled" else None


def select(environ: MutableMapping[str, str] = os.environ) -> str:
    """Apply ``APPMIXER_AUDIT_TEST_BUILD`` to the session's environment; the build chosen.

    ``compiled`` without a compiled tree is an error, never a silent fall back to pure.
    """
    wanted = environ.get(BUILD_VAR, "pure") or "pure"
    if wanted == "pure":
        return wanted
    if wanted != "compiled":
        raise RuntimeError(f"{BUILD_VAR} must be pure or compiled, not {wanted!r}")
    env = compiled_env(environ)
    if env is None:
        raise RuntimeError(
            f"{BUILD_VAR}=compiled, but {compiled_tree(environ)} holds no compiled build "
            "(make compiled)"
        )
    environ.update(env)
    return wanted
