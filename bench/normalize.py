"""Normalizer throughput on the simulated catalog mix, on one core.

    python bench/normalize.py [--events 100000] [--seed 1]

Prints which build of the normalizer ran (compiled with mypyc, or pure Python: see
docs/performance.md), events per second (wall and CPU; with --rounds, the best round and
the median CPU figure too), CPU time and peak memory (RSS). Lines are generated and
encoded before the clock starts, so only normalizing is measured. A measurement, never an
assertion: the target (docs/performance.md) is 50,000 events/s. ``--json`` adds one last line of
JSON for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import resource
import statistics
import sys
import time
from collections import Counter

from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source, compiled
from devtools.simulate import write_events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat and report the best and the median"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)

    # Written to memory and split, as if read from a file: lines hold just their bytes.
    buffer = io.BytesIO()
    write_events(buffer, args.events, args.seed)
    lines = buffer.getvalue().splitlines()
    del buffer
    size = sum(len(line) + 1 for line in lines)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    normalizer = Normalizer(NormalizeOptions(host_name="bench"))
    walls: list[float] = []
    cpus: list[float] = []
    outcomes: Counter[str] = Counter()
    change_docs = 0
    for _ in range(args.rounds):
        outcomes.clear()
        change_docs = 0
        offset = 0
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        for line in lines:
            outcome = normalizer(line, Source("bench.ndjson", "0:0:bench", offset, "bench"))
            offset += len(line) + 1
            outcomes[type(outcome).__name__] += 1
            if type(outcome) is Normalized:
                change_docs += len(outcome.changes)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"build:         {'compiled (mypyc)' if compiled() else 'pure Python'}")
    print(f"events:        {len(lines)} ({size / 1e6:.1f} MB of NDJSON)")
    print(f"outcomes:      {dict(outcomes)}; {change_docs} change documents")
    best_wall, best_cpu = min(walls), min(cpus)
    print(f"wall time:     {best_wall:.3f} s -> {len(lines) / best_wall:,.0f} events/s")
    print(f"CPU time:      {best_cpu:.3f} s -> {len(lines) / best_cpu:,.0f} events/s on one core")
    if len(cpus) > 1:
        median = statistics.median(cpus)
        print(
            f"               median of {len(cpus)} rounds: {median:.3f} s -> "
            f"{len(lines) / median:,.0f} events/s"
        )
    print(
        f"peak RSS:      {peak_kib / 1024:.1f} MiB "
        f"({baseline_kib / 1024:.1f} MiB before normalizing, input included)"
    )
    print(f"python:        {sys.version.split()[0]}")
    if args.json:
        figures = {
            "build": "compiled" if compiled() else "pure",
            "events": len(lines),
            "rounds": len(cpus),
            "eps_cpu_median": len(lines) / statistics.median(cpus),
            "eps_cpu_best": len(lines) / best_cpu,
            "eps_wall_best": len(lines) / best_wall,
            "us_per_event_cpu": statistics.median(cpus) / len(lines) * 1e6,
        }
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
