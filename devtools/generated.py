"""Files made from the project's sources (the rules' import file, the SIEM doc's tables):
written by their generator, or checked against it, so a stale committed copy fails a test."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, args: list[str], command: str, summary: str = "") -> int:
    """Write ``text`` to ``path``; with ``--check`` only say whether the file already holds it."""
    if args == ["--check"]:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path.name} is stale: run {command}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}{summary}")
    return 0
