"""Generated files: written by their generator, or checked to be current."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.generated import write_or_check


def test_check_passes_only_when_the_file_holds_the_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.ndjson"
    assert write_or_check(path, "new\n", ["--check"], "make it") == 1
    assert capsys.readouterr().err == "rules.ndjson is stale: run make it\n"
    assert not path.exists()
    path.write_text("old\n")
    assert write_or_check(path, "new\n", ["--check"], "make it") == 1
    assert path.read_text() == "old\n"
    path.write_text("new\n")
    assert write_or_check(path, "new\n", ["--check"], "make it") == 0


def test_without_check_the_file_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "siem.md"
    path.write_text("old\n")
    assert write_or_check(path, "new\n", [], "make it", " (1 table)") == 0
    assert path.read_text() == "new\n"
    assert capsys.readouterr().out == f"wrote {path} (1 table)\n"
