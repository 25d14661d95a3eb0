"""The official ECS field definitions, from npm's ``@elastic/ecs`` at the pinned version.

``package.json`` and ``package-lock.json`` beside this file pin the release. ``python -m
tests.ecs.schema`` (run by ``make ecs-schema``, which ``make test`` and CI call) installs it
with ``npm ci`` into a cache directory outside the repository and exports its ``ecs_flat``
data as JSON there; the conformance tests read that JSON. The export is keyed by the lock
file's digest, so a second run does nothing and a new pin installs afresh.

Without Node.js (or when npm cannot install) the installer says so and exits 0, and the tests
skip with that reason; in CI (``CI=true``) either is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from devtools.devnode import cache_dir

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
PACKAGE = "@elastic/ecs"

# What the export keeps of each field definition: enough to check names, types and values.
_EXPORT = """
const ecs = require(process.argv[1]);
const keep = ["type", "normalize", "allowed_values", "multi_fields", "level"];
const fields = {};
for (const [name, spec] of Object.entries(ecs.EcsFlat)) {
  fields[name] = Object.fromEntries(keep.filter((k) => k in spec).map((k) => [k, spec[k]]));
}
process.stdout.write(JSON.stringify({version: ecs.EcsVersion, fields}));
"""


def pinned_version() -> str:
    """The ``@elastic/ecs`` version the lock file pins."""
    lock = json.loads(LOCK.read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{PACKAGE}"]["version"])


def export_path() -> Path:
    """Where the exported definitions of the pinned release live."""
    override = os.environ.get("APPMIXER_AUDIT_ECS_FLAT")
    if override:
        return Path(override)
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    return cache_dir() / "ecs" / f"{pinned_version()}-{digest}" / "ecs_flat.json"


def install() -> Path:
    """``npm ci`` the pinned package into the cache and export ``ecs_flat``; idempotent."""
    target = export_path()
    if target.is_file():
        return target
    missing = [tool for tool in ("npm", "node") if shutil.which(tool) is None]
    if missing:
        raise FileNotFoundError(f"{' and '.join(missing)} not found: install Node.js and npm")
    work = target.parent
    work.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HERE / name, work / name)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=work,
        check=True,
    )
    exported = subprocess.run(
        ["node", "-e", _EXPORT, str(work / "node_modules" / PACKAGE)],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile(dir=work, delete=False) as handle:
        handle.write(exported)
    Path(handle.name).chmod(0o644)
    Path(handle.name).replace(target)
    return target


@dataclass(frozen=True)
class EcsField:
    """One ECS field: its type, whether it holds an array, its allowed values."""

    name: str
    type: str
    array: bool
    allowed: dict[str, tuple[str, ...]]  # allowed value -> expected event.type values
    multi_fields: dict[str, str]  # suffix -> type


@dataclass(frozen=True)
class EcsSchema:
    version: str
    fields: dict[str, EcsField]

    def allowed(self, name: str) -> dict[str, tuple[str, ...]]:
        return self.fields[name].allowed


def parse(data: dict[str, Any]) -> EcsSchema:
    """The schema from an export (the JSON ``install`` writes)."""
    fields = {}
    for name, spec in data["fields"].items():
        allowed = {
            value["name"]: tuple(value.get("expected_event_types", ()))
            for value in spec.get("allowed_values", ())
        }
        multi = {sub["name"]: sub["type"] for sub in spec.get("multi_fields", ())}
        array = "array" in spec.get("normalize", ())
        fields[name] = EcsField(name, spec["type"], array, allowed, multi)
    return EcsSchema(str(data["version"]), fields)


@cache
def load() -> EcsSchema:
    """The pinned release's definitions; FileNotFoundError when not installed."""
    return parse(json.loads(export_path().read_text(encoding="utf-8")))


def main() -> int:
    try:
        path = install()
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        if os.environ.get("CI", "").lower() == "true":
            print(f"ECS definitions: {error}", file=sys.stderr)
            return 1
        print(f"ECS definitions not installed ({error}); the conformance tests will skip")
        return 0
    print(f"ECS {load().version} definitions: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
