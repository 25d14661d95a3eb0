"""The wheel carries every file the installed tool reads besides its Python modules.

An install from the wheel (the container image is one) has no repository beside it: the
mappings, the dashboards and the analysis plugin's sources (which `dev-es start --security`
builds with Maven) must be inside the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = {
    "mappings": ("*.json",),
    "dashboards": ("*.ndjson", "*.json"),
    "devtools/es-analysis-plugin": ("*",),
}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The files of a wheel built from the tracked files alone (no build leftovers)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("appmixer_audit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.mark.parametrize("folder", sorted(DATA))
def test_data_files_are_in_the_wheel(wheel_names: set[str], folder: str) -> None:
    wanted = {
        path.relative_to(ROOT).as_posix()
        for pattern in DATA[folder]
        for path in (ROOT / folder).rglob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert wanted, f"nothing found under {folder}"
    assert wanted <= wheel_names, sorted(wanted - wheel_names)


def test_the_plugin_sources_are_where_the_installed_code_looks(wheel_names: set[str]) -> None:
    from devtools.secure import PLUGIN_SOURCES

    pom = (PLUGIN_SOURCES / "pom.xml").relative_to(ROOT).as_posix()
    assert pom in wheel_names
