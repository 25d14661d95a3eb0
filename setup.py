"""The optional compiled build of the per-line path; a plain pure-Python package otherwise.

Everything about the package (metadata, dependencies, entry points) lives in pyproject.toml.
This file only adds extension modules, and only when ``APPMIXER_AUDIT_COMPILE=1`` is set at
build time: then mypyc (shipped with mypy) compiles the modules of the per-line path
(``agent.build.COMPILED_MODULES``: tailer, normalizer, chain step, encoding, settler) to C.

    pip install -e '.[dev]'  # dependencies and mypy first: the build type-checks the code
    APPMIXER_AUDIT_COMPILE=1 pip install --no-build-isolation .

Without the variable nothing is compiled and no compiler is needed. See docs/performance.md.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import Extension, setup

_BUILD = Path(__file__).parent / "agent" / "build.py"


def _compiled_modules() -> list[str]:
    """``COMPILED_MODULES`` of agent/build.py, read without importing it."""
    tree = ast.parse(_BUILD.read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "COMPILED_MODULES"
            and node.value is not None
        ):
            return list(ast.literal_eval(node.value))
    raise SystemExit("agent/build.py defines no COMPILED_MODULES")


def _ext_modules() -> list[Extension]:
    if os.environ.get("APPMIXER_AUDIT_COMPILE") != "1":
        return []
    try:
        from mypyc.build import mypycify  # only the compiled build needs it
    except ImportError:
        raise SystemExit(
            "APPMIXER_AUDIT_COMPILE=1 needs mypyc in the build environment: "
            "pip install mypy (with the project's dependencies), then build with "
            "pip install --no-build-isolation"
        ) from None
    paths = [name.replace(".", "/") + ".py" for name in _compiled_modules()]
    return mypycify(paths)


setup(ext_modules=_ext_modules())
