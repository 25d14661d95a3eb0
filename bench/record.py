"""One row of the regression record in docs/performance.md, from ``bench/run.py --json``.

    python bench/record.py RESULTS.json --release 0.2.0

Each release adds its row (commit, machine, the headline figures), so a change that adds
cost per event shows up next to the release that brought it. Prints the Markdown row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HEADER = (
    "| release | commit | machine (load at start) | path | events/s | agent CPU s / 10k | "
    "pure path CPU s / 10k | peak RSS MiB | backlog MiB | idle MiB | p99 s | "
    "normalizer events/s, pure / compiled |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _fmt(value: Any, pattern: str = "{:,.0f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def row(report: dict[str, Any], release: str) -> str:
    """The Markdown row of one benchmark report."""
    machine = report.get("machine", {})
    load = machine.get("load_average") or ["?"]
    where = f"{machine.get('cpus')} CPUs, Python {machine.get('python')} ({load[0]})"
    cells = [
        release,
        f"`{report.get('commit', 'unknown')}`",
        where,
        str(report.get("ship_build", "pure")),
        _fmt(report.get("ship_eps")),
        _fmt(report.get("ship_cpu_s_per_10k"), "{:.2f}"),
        _fmt(report.get("pure_ship_cpu_s_per_10k"), "{:.2f}"),
        _fmt(report.get("peak_rss_mib")),
        _fmt(report.get("backlog_rss_mib")),
        _fmt(report.get("idle_rss_mib")),
        _fmt(report.get("p99_latency_s"), "{:.2f}"),
        f"{_fmt(report.get('normalize_eps'))} / {_fmt(report.get('normalize_compiled_eps'))}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--release", default="unreleased")
    parser.add_argument("--header", action="store_true", help="print the table header first")
    args = parser.parse_args(argv)
    report = json.loads(args.results.read_text())
    if args.header:
        print(HEADER)
    print(row(report, args.release))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
