"""File to Elasticsearch: events per second, CPU time and peak memory of ``run --once``.

    ES_URL=http://127.0.0.1:9200 python bench/ship.py [--events 100000] [--seed 1]

Writes N simulated events to a temporary file, installs the templates, then times the real
command (``appmixer-audit run --once``, a child process) from start to its last
acknowledgement, and checks the count in the index. CPU time and peak RSS are the child's.
A measurement, never an assertion: the agent should not be the bottleneck (DESIGN.md), so
compare its CPU time with the wall time, and the node's CPU with both.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from elasticsearch import Elasticsearch

from agent.config import Settings
from devtools.simulate import write_events
from indexer.setup import install


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--es-url", default=os.environ.get("ES_URL", "http://127.0.0.1:9200"))
    parser.add_argument("--namespace", default="bench" + uuid.uuid4().hex[:8])
    parser.add_argument("--batch-max-events", type=int, default=None)
    args = parser.parse_args(argv)

    es = Elasticsearch(args.es_url, request_timeout=120)
    settings = Settings(es_url=[args.es_url], namespace=args.namespace)
    install(es, settings.events_target, settings.changes_target)
    with tempfile.TemporaryDirectory(prefix="appmixer-audit-bench-") as workdir:
        log_file = Path(workdir) / "audit.log"
        with log_file.open("wb") as out:
            write_events(out, args.events, args.seed)
        size = log_file.stat().st_size
        command = [sys.executable, "-m", "agent", "run", "--once", "--no-setup"]
        command += ["--path", str(log_file), "--state-dir", str(Path(workdir) / "state")]
        command += ["--es-url", args.es_url, "--namespace", args.namespace]
        env = {**os.environ, "APPMIXER_AUDIT_LOG_LEVEL": "warning"}
        if args.batch_max_events:
            env["APPMIXER_AUDIT_BATCH_MAX_EVENTS"] = str(args.batch_max_events)
        node_cpu = _node_cpu(es)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        node_cpu_after = _node_cpu(es)
        node_cpu_used = None if None in (node_cpu, node_cpu_after) else node_cpu_after - node_cpu  # type: ignore[operator]
    if result.returncode != 0:
        print(result.stdout, result.stderr, sep="\n", file=sys.stderr)
        return result.returncode
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    target = settings.events_target
    es.indices.refresh(index=target)
    indexed = int(es.count(index=target)["count"])
    print(f"events:         {args.events} ({size / 1e6:.1f} MB of NDJSON), indexed {indexed}")
    print(f"wall time:      {wall:.2f} s -> {args.events / wall:,.0f} events/s file to index")
    print(f"agent CPU time: {cpu:.2f} s ({cpu / wall:.0%} of one core; "
          f"{args.events / cpu:,.0f} events per CPU second)")  # fmt: skip
    if node_cpu_used is not None:
        print(f"node CPU time:  {node_cpu_used:.2f} s ({node_cpu_used / wall:.0%} of one core)")
    print(f"agent peak RSS: {after.ru_maxrss / 1024:.1f} MiB")
    print(f"summary:        {' | '.join(result.stdout.strip().splitlines())}")
    return 0


def _node_cpu(es: Elasticsearch) -> float | None:
    """CPU seconds used so far by the node's process (as the node reports them)."""
    try:
        info = es.nodes.stats(node_id="_local", metric="process")
        millis = next(iter(info["nodes"].values()))["process"]["cpu"]["total_in_millis"]
    except (KeyError, StopIteration):
        return None
    return float(millis) / 1000


if __name__ == "__main__":
    sys.exit(main())
