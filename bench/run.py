"""Every performance figure of the agent, side by side with rsyslog, in one run.

    .venv/bin/python bench/run.py [--quick] [--json FILE] [--es-url URL]

On a local node it starts itself (``dev-es``'s code, node ``bench``, ports 9340/9440 plus
``APPMIXER_AUDIT_TEST_PORT_OFFSET``; stopped at the end unless it was already running) or on
``--es-url``, it measures:

- the normalizer alone on one core, 100,000 simulated events, pure Python and, when
  ``build/compiled`` holds the compiled per-line path (``make compiled``), compiled;
- file to indexed, N simulated events (100,000; ``--quick`` 20,000) for three shippers in
  alternating order over the rounds: the agent (``run --once``), rsyslog shipping the agent's
  own documents, rsyslog shipping raw lines (``bench/rsyslog_peer.py``); events/s, shipper CPU
  seconds (``wait4``) and peak RSS (``VmHWM``), node CPU seconds (node stats) per 10,000 events;
  the agent runs the compiled path when it is built, and then the pure path too, as a fourth
  shipper in the same rounds (the before/after row);
- latency from write to searchable at a steady 1,000 events/s (60 s; ``--quick`` 20 s);
- peak RSS under a 200,000-line backlog with the node frozen, and RSS of an agent idle for
  60 s on one quiet file; both with default settings.

It prints a table of medians and writes every figure (and each round) as JSON. It is a
measurement: it never fails because of a figure. rsyslog rows need Debian's ``rsyslog`` and
``rsyslog-elasticsearch`` (``make bench-all`` installs them); without them they read n/a.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phases
import rigs
import rsyslog_peer
from documents import write_documents
from elasticsearch import Elasticsearch

from devtools.simulate import write_events

ROOT = Path(__file__).resolve().parent.parent
BACKLOG_LINES = 200_000
IDLE_AFTER = 60.0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    events = args.events or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (2 if args.quick else 3)
    latency_s = 20.0 if args.quick else 60.0
    hold_s = 15.0 if args.quick else 30.0
    began = time.monotonic()
    report: dict[str, Any] = {"command": " ".join(["bench/run.py", *(argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory(prefix="appmixer-audit-bench-") as tmp, _node(args) as node:
        url, pause, resume = node
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        es = Elasticsearch(url, request_timeout=120)
        bench = phases.Bench(es, url, port, Path(tmp), uuid.uuid4().hex[:6])
        _say(f"node {url}; installing templates")
        setup = subprocess.run(
            [*phases.AGENT, "setup", "--es-url", url],
            capture_output=True,
            text=True,
            check=False,
            env=phases.QUIET_ENV,
        )
        if setup.returncode != 0:
            bench.notes.append(f"setup exited {setup.returncode}: {setup.stderr.strip()[-300:]}")
        report["commit"] = rigs.commit(ROOT)
        report["machine"] = {
            **rigs.machine(),
            "python": platform.python_version(),
            "elasticsearch": rigs.node_version(es),
        }
        report["agent_python"] = phases.AGENT_PYTHON
        if sys.executable == phases.AGENT_PYTHON:
            bench.notes.append(
                "agent: ran in this environment, development tools included "
                "(make bench creates .venv-runtime, the runtime dependencies only)"
            )
        report["normalizer"] = _normalizer(bench)
        idle, idle_started = phases.start_idle(bench)
        trees = dict(item.split("=", 1) for item in args.tree)
        report["ship"] = _ship(bench, events, rounds, trees)
        _say(f"latency: 1,000 events/s for {latency_s:.0f} s")
        report["latency"] = phases.latency(bench, latency_s)
        _say(f"backlog: {BACKLOG_LINES:,} lines, node frozen for {hold_s:.0f} s")
        backlog_file = bench.workdir / "backlog.log"
        with backlog_file.open("wb") as out:
            write_events(out, BACKLOG_LINES, 3)
        if pause is None:
            bench.notes.append("backlog: not measured (the node is not ours to freeze)")
            report["backlog"] = {}
        else:
            report["backlog"] = phases.backlog(bench, backlog_file, pause, resume, hold_s)
        report["idle"] = phases.read_idle(bench, idle, idle_started, IDLE_AFTER)
        report["notes"] = bench.notes
    report["seconds"] = round(time.monotonic() - began, 1)
    report.update(_headline(report))
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events, shorter phases")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--es-url", help="use this node instead of starting one")
    parser.add_argument("--events", type=int, help="events per shipper run")
    parser.add_argument("--rounds", type=int, help="rounds of the three shippers")
    parser.add_argument("--keep-node", action="store_true", help="leave the node running")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="one more agent to ship with: the package installed in PATH (pip install --target),"
        " e.g. an earlier commit, in the same rounds (row agent_NAME)",
    )
    return parser.parse_args(argv)


@contextmanager
def _node(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[], None] | None, Any]]:
    """The node to measure against: given, or a dev node of our own (stopped afterwards)."""
    if args.es_url:
        yield args.es_url.rstrip("/"), None, lambda: None
        return
    from devtools.devnode import DevNode

    offset = int(os.environ.get("APPMIXER_AUDIT_TEST_PORT_OFFSET", "0") or 0)
    name = f"bench-{offset}" if offset else "bench"
    node = DevNode(name, 9340 + offset, 9440 + offset, heap="1g")
    ours = not node.is_running()
    _say(f"starting node {name}" if ours else f"reusing node {name}")
    if ours:
        node.wipe()  # start empty: old runs' data streams would add to the node's work
    url = node.start(timeout=300)
    try:
        yield url, node.pause, node.resume
    finally:
        node.resume()
        if ours and not args.keep_node:
            node.stop()


def _normalizer(bench: phases.Bench) -> dict[str, Any]:
    builds: dict[str, dict[str, str] | None] = {"pure": None}
    if phases.AGENT_BUILD == "compiled":
        builds["compiled"] = phases.agent_env("compiled")
    else:
        bench.notes.append("normalizer: no compiled build (make compiled makes one)")
    results: dict[str, Any] = {}
    for build, env in builds.items():
        _say(f"normalizer: {build}")
        figures = phases.normalizer(phases.AGENT_PYTHON, 100_000, 3, env)
        if figures is None or figures.get("build") != build:
            bench.notes.append(f"normalizer: the {build} interpreter did not run the {build} build")
        results[build] = figures
    return results


def _ship(bench: phases.Bench, events: int, rounds: int, trees: dict[str, str]) -> dict[str, Any]:
    warmup = _inputs(bench, "warmup", 2_000)
    measured = _inputs(bench, "events", events)
    shippers: dict[str, Callable[[str, Inputs], dict[str, Any]]] = {
        "agent": lambda name, i: phases.ship_agent(bench, name, i.source, i.events)
    }
    if phases.AGENT_BUILD == "compiled":  # the source too, for the before/after row
        shippers["agent_pure"] = lambda name, i: phases.ship_agent(
            bench, name, i.source, i.events, build="pure"
        )
    else:
        bench.notes.append("agent: no compiled build (make compiled); the pure path ran")
    for tree_name, tree in trees.items():
        shippers[f"agent_{tree_name}"] = lambda name, i, tree=tree: phases.ship_agent(
            bench, name, i.source, i.events, build=str(Path(tree).resolve())
        )
    missing = rsyslog_peer.available()
    if missing is None:
        shippers["rsyslog_docs"] = lambda name, i: phases.ship_rsyslog(
            bench, name, "docs", i.documents, events=i.events, documents=i.document_count
        )
        shippers["rsyslog_raw"] = lambda name, i: phases.ship_rsyslog(
            bench, name, "raw", i.source, events=i.events, documents=i.events
        )
    else:
        bench.notes.append(f"rsyslog rows: {missing}")
    _say("warm-up, not counted: the node compiles and caches on its first writes")
    for name, ship in shippers.items():
        ship(f"warmup-{name}", warmup)
    # The node's indexing path is compiled by its JIT over the first hundred thousand or so
    # documents: without a full-size run first, the first measured run paid for it (twice
    # the node CPU per event of every later run, in the first round's first shipper only).
    _say(f"warm-up of the node, not counted: agent, {events:,} events")
    shippers["agent"]("warmup-node", measured)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in shippers}
    for round_no in range(rounds):
        order = list(shippers) if round_no % 2 == 0 else list(reversed(shippers))
        for shipper in order:
            rigs.wait_quiet(bench.es)  # the previous run's merges are not this one's cost
            _say(f"round {round_no + 1}/{rounds}: {shipper}, {events:,} events")
            runs[shipper].append(shippers[shipper](f"{shipper}-{round_no}", measured))
    return {
        "events": events,
        "rounds": rounds,
        "runs": runs,
        "median": {name: _medians(r) for name, r in runs.items()},
    }


@dataclass
class Inputs:
    """One simulated log and, for rsyslog, the agent's documents for it."""

    source: Path
    events: int
    documents: Path
    document_count: int


def _inputs(bench: phases.Bench, name: str, events: int) -> Inputs:
    source = bench.workdir / f"{name}.log"
    with source.open("wb") as out:
        write_events(out, events, 1)
    documents = bench.workdir / f"{name}.documents.ndjson"
    count = 0
    if rsyslog_peer.available() is None:  # the agent's own documents, chain fields and all
        count = write_documents(source, phases.DOCS_NAMESPACE, documents)
    return Inputs(source, events, documents, count)


def _medians(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    keys = {key for run in runs for key in run}
    out: dict[str, float | None] = {}
    for key in sorted(keys):
        values = [run[key] for run in runs if isinstance(run.get(key), int | float)]
        out[key] = statistics.median(values) if values else None
    return out


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    """The flat figures the issue names, for scripts and for the table."""
    median = report["ship"]["median"]
    agent, docs, raw, pure = (
        median.get(k, {}) for k in ("agent", "rsyslog_docs", "rsyslog_raw", "agent_pure")
    )
    normal = report["normalizer"]
    lat, backlog, idle = report["latency"], report["backlog"], report["idle"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    return {
        "normalize_eps": (normal.get("pure") or {}).get("eps_cpu_median"),
        "normalize_compiled_eps": (normal.get("compiled") or {}).get("eps_cpu_median"),
        "ship_build": phases.AGENT_BUILD,
        "ship_eps": agent.get("eps"),
        "ship_cpu_s_per_10k": agent.get("cpu_s_per_10k"),
        "peak_rss_mib": agent.get("peak_rss_mib"),
        "node_cpu_s_per_10k": agent.get("node_cpu_s_per_10k"),
        "pure_ship_eps": pure.get("eps"),
        "pure_ship_cpu_s_per_10k": pure.get("cpu_s_per_10k"),
        "pure_peak_rss_mib": pure.get("peak_rss_mib"),
        "idle_rss_mib": idle.get("rss_mib"),
        "backlog_rss_mib": backlog.get("peak_rss_mib"),
        "p50_latency_s": lat.get("p50_s"),
        "p99_latency_s": lat.get("p99_s"),
        "max_latency_s": lat.get("max_s"),
        "rsyslog_eps": raw.get("eps"),
        "rsyslog_cpu_s_per_10k": raw.get("cpu_s_per_10k"),
        "rsyslog_peak_rss_mib": raw.get("peak_rss_mib"),
        "rsyslog_node_cpu_s_per_10k": raw.get("node_cpu_s_per_10k"),
        "rsyslog_docs_eps": docs.get("eps"),
        "rsyslog_docs_cpu_s_per_10k": docs.get("cpu_s_per_10k"),
        "rsyslog_docs_peak_rss_mib": docs.get("peak_rss_mib"),
        "rsyslog_docs_node_cpu_s_per_10k": docs.get("node_cpu_s_per_10k"),
        "ship_vs_rsyslog_docs": ratio(agent.get("eps"), docs.get("eps")),
        "ship_vs_rsyslog_raw": ratio(agent.get("eps"), raw.get("eps")),
    }


def _fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _print(r: dict[str, Any]) -> None:
    machine = r["machine"]
    print(
        f"\nmachine: {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, load at start {machine['load_average']}; "
        f"Python {machine['python']}, Elasticsearch {machine['elasticsearch']}; "
        f"{r['seconds']} s"
    )
    ship = r["ship"]
    print(f"\nfile -> indexed, {ship['events']:,} events, median of {ship['rounds']} rounds")
    print("| shipper | events/s to indexed | CPU s per 10k | peak RSS MiB | node CPU s per 10k |")
    print("|---|---|---|---|---|")
    labels = {
        "agent": f"appmixer-audit run --once ({r['ship_build']} path)",
        "agent_pure": "appmixer-audit run --once (pure path)",
        "rsyslog_docs": "rsyslog, same documents",
        "rsyslog_raw": "rsyslog, raw lines as message",
    }
    for name in ship["median"]:
        labels.setdefault(name, f"appmixer-audit run --once ({name.removeprefix('agent_')})")
    for name, label in labels.items():
        m = ship["median"].get(name, {})
        print(
            f"| {label} | {_fmt(m.get('eps'))} | {_fmt(m.get('cpu_s_per_10k'), '{:.2f}')} | "
            f"{_fmt(m.get('peak_rss_mib'))} | {_fmt(m.get('node_cpu_s_per_10k'), '{:.2f}')} |"
        )
    print(
        f"\nagent / rsyslog same documents: {_fmt(r['ship_vs_rsyslog_docs'], '{:.2f}')} x; "
        f"agent / rsyslog raw lines: {_fmt(r['ship_vs_rsyslog_raw'], '{:.2f}')} x"
    )
    print(
        f"normalizer, one core: pure {_fmt(r['normalize_eps'])} events/s, "
        f"compiled {_fmt(r['normalize_compiled_eps'])} events/s"
    )
    seconds = [
        _fmt(r[key], "{:.2f}") for key in ("p50_latency_s", "p99_latency_s", "max_latency_s")
    ]
    print(
        "latency, write to searchable at 1,000 events/s: "
        f"p50 {seconds[0]} s, p99 {seconds[1]} s, max {seconds[2]} s"
    )
    print(
        f"memory: peak RSS {_fmt(r['peak_rss_mib'])} MiB shipping, "
        f"{_fmt(r['backlog_rss_mib'])} MiB under a {BACKLOG_LINES:,}-line backlog (node frozen), "
        f"{_fmt(r['idle_rss_mib'])} MiB idle"
    )
    for note in r["notes"]:
        print(f"note: {note}")


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
