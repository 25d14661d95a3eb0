"""The measured phases of ``bench/run.py``, one function each; every one returns figures.

Each shipper run starts from nothing (fresh state directory, its indices deleted before and
after), so rounds are independent and the node does the same work for every shipper.
"""

from __future__ import annotations

import bisect
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import rigs
import rsyslog_peer
from elasticsearch import Elasticsearch

from devtools.simulate import iter_events

_RUNTIME = Path(__file__).resolve().parent.parent / ".venv-runtime" / "bin" / "python"
# The agent as deployed: runtime dependencies only (make bench creates .venv-runtime).
AGENT_PYTHON = str(_RUNTIME) if _RUNTIME.exists() else sys.executable
AGENT = [AGENT_PYTHON, "-m", "agent"]
# The compiled per-line path (make compiled): the agent runs it when it is built, and the
# pure-Python source beside it, so one run gives both rows.
COMPILED_TREE = Path(__file__).resolve().parent.parent / "build" / "compiled"
AGENT_BUILD = "compiled" if (COMPILED_TREE / ".built").exists() else "pure"
DOCS_NAMESPACE = "bdocsnamespace"  # replaced by each rsyslog run's own namespace
QUIET_ENV = {**os.environ, "APPMIXER_AUDIT_LOG_LEVEL": "warning"}


@dataclass
class Bench:
    """What every phase shares: the node, the work directory, the notes for the reader."""

    es: Elasticsearch
    url: str
    port: int
    workdir: Path
    token: str  # in every namespace: data streams cannot always be deleted, so never reused
    notes: list[str] = field(default_factory=list)

    def namespace(self, name: str) -> str:
        return f"b{self.token}_{name.replace('-', '_')}"

    def agent(
        self, name: str, path: Path, namespace: str, *, once: bool, build: str = AGENT_BUILD
    ) -> rigs.Child:
        command = [*AGENT, "run", "--no-setup", "--path", str(path)]
        command += ["--state-dir", str(self.workdir / f"state-{name}")]
        command += ["--es-url", self.url, "--namespace", namespace]
        if once:
            command.insert(4, "--once")
        return rigs.Child(command, env=agent_env(build), stdout=self.workdir / f"{name}.out")


def agent_env(build: str) -> dict[str, str]:
    """The agent's environment: ``pure`` (the source as installed), ``compiled`` (the
    compiled tree first on its path), or the path of another installed tree (``--tree``)."""
    if build == "pure":
        return QUIET_ENV
    tree = COMPILED_TREE if build == "compiled" else Path(build)
    return {**QUIET_ENV, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}


# --------------------------------------------------------------------------- normalizer


def normalizer(
    python: str, events: int, rounds: int, env: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """``bench/normalize.py`` under one interpreter: isolated (``-I``, so it imports what is
    installed), or given ``env`` (the compiled tree on its path, ``-P``)."""
    script = Path(__file__).with_name("normalize.py")
    flag = "-I" if env is None else "-P"
    command = [python, flag, str(script), "--events", str(events), "--rounds", str(rounds)]
    result = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, check=False, env=env
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return None
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


# --------------------------------------------------------------------------- file to index


def _poll_counts(bench: Bench, index: str, stop: threading.Event, seen: list[int]) -> None:
    """Ask for the count at a steady pace (the same load on the node for every shipper)."""
    while not stop.wait(0.2):
        seen.append(rigs.count(bench.es, index))


def ship_agent(
    bench: Bench, name: str, source: Path, events: int, build: str = AGENT_BUILD
) -> dict[str, Any]:
    """``run --once`` from start to exit: it exits after the last acknowledgement."""
    namespace = bench.namespace(name)
    target = f"logs-appmixer.audit-{namespace}"
    stop, seen = threading.Event(), [0]
    poller = threading.Thread(target=_poll_counts, args=(bench, target, stop, seen))
    node_before = rigs.node_cpu(bench.es)
    child = bench.agent(name, source, namespace, once=True, build=build)
    poller.start()
    usage = child.wait(timeout=max(300.0, events / 200))
    if usage is None:
        usage = child.stop(signal.SIGKILL)
        bench.notes.append(f"{name}: did not finish in time, killed")
    node_after = rigs.node_cpu(bench.es)
    stop.set()
    poller.join()
    if usage.status not in (0, 3):
        bench.notes.append(f"{name}: exit status {usage.status} (see its output file)")
    bench.es.indices.refresh(index=target, ignore_unavailable=True)
    indexed = rigs.count(bench.es, target)
    if indexed != events:
        bench.notes.append(f"{name}: {indexed} of {events} events indexed")
    return _figures(events, usage.wall, usage, node_before, node_after)


def ship_rsyslog(
    bench: Bench, name: str, shape: str, source: Path, *, events: int, documents: int
) -> dict[str, Any]:
    """rsyslogd from start until the node counts every document, then stopped and reaped."""
    workdir = bench.workdir / name
    workdir.mkdir()
    namespace = bench.namespace(name)
    if shape == "docs":  # the same documents, into this run's own data streams
        index = f"logs-appmixer.audit-{namespace},logs-appmixer.audit_changes-{namespace}"
        data = source.read_bytes().replace(DOCS_NAMESPACE.encode(), namespace.encode())
        source = workdir / "documents.ndjson"
        source.write_bytes(data)
        del data
    else:
        index = f"bench-raw-{namespace}"
    if shape == "raw":
        bench.es.indices.create(index=index, body=rsyslog_peer.RAW_INDEX_BODY)
    config = workdir / "rsyslog.conf"
    config.write_text(rsyslog_peer.config(shape, source, workdir, bench.port, raw_index=index))
    node_before = rigs.node_cpu(bench.es)
    child = rigs.Child(rsyslog_peer.command(config, workdir), stdout=workdir / "rsyslogd.out")
    progress = {"count": 0, "at": time.monotonic()}

    def done() -> bool:
        now = rigs.count(bench.es, index)
        if now > progress["count"]:
            progress.update(count=now, at=time.monotonic())
        stalled = time.monotonic() - progress["at"] > 60
        return now >= documents or stalled or child.process.poll() is not None

    rigs.wait_until(done, timeout=max(600.0, events / 100), interval=0.2)
    wall = time.perf_counter() - child.started
    node_after = rigs.node_cpu(bench.es)
    usage = child.stop()
    if progress["count"] < documents:
        bench.notes.append(f"{name}: {progress['count']} of {documents} documents indexed")
        events = int(events * progress["count"] / documents)
    errors = workdir / "errors.json"
    if errors.exists() and errors.stat().st_size:
        bench.notes.append(f"{name}: rsyslog reported errors: {_head(errors)}")
    if shape == "raw":
        rigs.drop(bench.es, index)
    return _figures(events, wall, usage, node_before, node_after)


def _head(path: Path, limit: int = 300) -> str:
    with path.open("rb") as handle:
        return handle.read(limit).decode(errors="replace").replace("\n", " ")


def _figures(
    events: int,
    wall: float,
    usage: rigs.Usage,
    node_before: float | None,
    node_after: float | None,
) -> dict[str, Any]:
    node = None if node_before is None or node_after is None else node_after - node_before
    per_10k = 10_000 / events if events else 0.0
    return {
        "events": events,
        "wall_s": wall,
        "eps": events / wall if wall > 0 else None,
        "cpu_s_per_10k": usage.cpu * per_10k if events else None,
        "peak_rss_mib": usage.peak_rss_mib,
        "node_cpu_s_per_10k": node * per_10k if node is not None and events else None,
    }


# --------------------------------------------------------------------------- latency


def latency(bench: Bench, seconds: float, rate: int = 1000) -> dict[str, Any]:
    """A writer appends ``rate`` lines a second to a live file; when does each become searchable?

    Lines are written in 10 ms ticks and the time of each write is kept; the events index is
    counted every 50 ms. The agent keeps the file's order, so the N-th event is searchable
    once the count exceeds N: its latency is that moment minus its write time. One event is
    written and awaited first, untimed: creating the data stream is a once-in-a-lifetime
    cost of a new namespace, not a latency of the steady state.
    """
    namespace, path = bench.namespace("latency"), bench.workdir / "latency.log"
    target = f"logs-appmixer.audit-{namespace}"
    total = int(seconds * rate)
    start_ms = int(time.time() * 1000)
    lines = [orjson.dumps(r) + b"\n" for r in iter_events(total + 1, 7, start_ms=start_ms)]
    path.write_bytes(lines.pop(0))
    child = bench.agent("latency", path, namespace, once=False)
    if not rigs.wait_until(lambda: rigs.count(bench.es, target) >= 1, timeout=120.0, interval=0.2):
        bench.notes.append("latency: the first event was not searchable within 120 s")
    time.sleep(1.0)
    polls: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            polls.append((time.perf_counter(), rigs.count(bench.es, target)))
            stop.wait(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    written: list[float] = []
    began = time.perf_counter()
    with path.open("ab") as out:
        while len(written) < total:
            due = min(total, int((time.perf_counter() - began) * rate) + 1)
            if due > len(written):
                out.write(b"".join(lines[len(written) : due]))
                out.flush()
                now = time.perf_counter()
                written.extend([now] * (due - len(written)))
            time.sleep(0.01)
    rigs.wait_until(lambda: bool(polls) and polls[-1][1] >= total + 1, timeout=30.0)
    stop.set()
    poller.join()
    usage = child.stop()
    times = [t for t, _ in polls]
    counts: list[int] = []
    for _, c in polls:  # the timed events searchable so far (the first one is untimed)
        counts.append(max(c - 1, counts[-1] if counts else 0))
    delays = []
    worst: dict[int, float] = {}  # per second of writing, the longest wait: where the tail is
    for i, wrote in enumerate(written):
        j = bisect.bisect_right(counts, i)  # the first poll that counted event i
        if j < len(times):
            delay = max(0.0, times[j] - wrote)
            delays.append(delay)
            second = int(wrote - began)
            worst[second] = max(worst.get(second, 0.0), delay)
    missing = total - len(delays)
    if missing:
        bench.notes.append(f"latency: {missing} of {total} events not searchable within 30 s")
    delays.sort()

    def pct(p: float) -> float | None:
        return delays[min(len(delays) - 1, int(p * len(delays)))] if delays else None

    return {
        "events": total,
        "rate": rate,
        "p50_s": pct(0.50),
        "p99_s": pct(0.99),
        "max_s": delays[-1] if delays else None,
        "worst_by_second": [round(worst[k], 2) for k in sorted(worst)],
        "agent_cpu_s_per_10k": usage.cpu * 10_000 / total,
        "agent_peak_rss_mib": usage.peak_rss_mib,
    }


# --------------------------------------------------------------------------- memory


def backlog(bench: Bench, source: Path, pause: Any, resume: Any, hold: float) -> dict[str, Any]:
    """Peak RSS with a big backlog and the node frozen, once the agent has begun to ship.

    The node is frozen (SIGSTOP) as soon as the agent's first bulk request has created the
    events index, so the agent is past its start-up and every later request hangs: the
    reader fills the buffer to its bounds and must stop there.
    """
    namespace = bench.namespace("backlog")
    target = f"logs-appmixer.audit-{namespace}"
    child = bench.agent("backlog", source, namespace, once=False)
    try:
        rigs.wait_until(lambda: bool(bench.es.indices.exists(index=target)), 30.0, 0.02)
        pause()
        samples: list[float] = []
        deadline = time.monotonic() + hold
        peak = 0.0
        while time.monotonic() < deadline:
            rss, hwm = child.rss_mib()
            samples.append(rss)
            peak = max(peak, hwm)
            time.sleep(0.25)
    finally:
        usage = child.stop(signal.SIGKILL)
        resume()
    return {
        "peak_rss_mib": max(peak, usage.peak_rss_mib),  # both VmHWM of the agent itself
        "rss_at_end_mib": samples[-1] if samples else None,
        "held_s": hold,
    }


def start_idle(bench: Bench) -> tuple[rigs.Child, float]:
    """An agent on one quiet file (a few events written before it starts)."""
    path = bench.workdir / "quiet.log"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in iter_events(20, 5)))
    return bench.agent("idle", path, bench.namespace("idle"), once=False), time.monotonic()


def read_idle(bench: Bench, child: rigs.Child, started: float, after: float) -> dict[str, Any]:
    left = started + after - time.monotonic()
    if left > 0:
        time.sleep(left)
    rss, hwm = child.rss_mib()
    idle_for = time.monotonic() - started
    child.stop()
    return {"rss_mib": rss or None, "peak_rss_mib": hwm or None, "idle_for_s": idle_for}
