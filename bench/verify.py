"""How fast ``appmixer-audit verify`` replays a chain, and in how much memory.

    .venv/bin/python bench/verify.py [--events 100000 1000000] [--streams 1] [--es-url URL]

For each size it fills a fresh namespace with that many chained events (simulated Appmixer
records through the agent's normalizer, chained as the agent chains them, in ``--streams``
streams), signs a checkpoint every 10,000 events and a final one, then runs ``verify`` as a
child process and prints its wall time, events per second, CPU seconds and peak RSS
(``VmHWM``, read by ``bench/rigs.py``). With ``--tamper`` it then deletes one event a tenth
of the way in and measures again (a damaged stream is walked in memory, window by window).
The node is ``--es-url`` or a dev node of its own (``bench/run.py``'s). Figures go to
``docs/performance.md`` ("verify"); it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import ApiError, Elasticsearch, helpers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import Settings  # noqa: E402
from agent.evidence.chains import Signer  # noqa: E402
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source  # noqa: E402
from bench.rigs import Child  # noqa: E402
from bench.run import _node  # noqa: E402
from chain.checkpoint import ChainKey  # noqa: E402
from chain.link import Head, content_digest, step, stream_id  # noqa: E402
from devtools.simulate import write_events  # noqa: E402
from indexer.chain_index import write_checkpoint  # noqa: E402
from indexer.setup import install  # noqa: E402

SIGN_EVERY = 10_000
KEY = b"bench-verify-key-0123456789abcdef-0123"


def templates(namespace: str, count: int = 2_000) -> list[dict[str, Any]]:
    """Normalized simulated events, the shapes the chains are made of."""
    raw = io.BytesIO()
    write_events(raw, count, seed=7)
    normalizer = Normalizer(NormalizeOptions(namespace=namespace, host_name="bench-host"))
    found = []
    offset = 0
    for line in raw.getvalue().splitlines(keepends=True):
        outcome = normalizer(line.rstrip(b"\n"), Source("/logs/a", "f" * 32, offset, "bench"))
        offset += len(line)
        if isinstance(outcome, Normalized):
            found.append(outcome.event)
    return found


def actions(
    es: Elasticsearch, settings: Settings, events: int, streams: int, state: Path
) -> Iterator[dict[str, Any]]:
    """Chained events as bulk actions, checkpoints stored as they fall due."""
    shapes = templates(settings.namespace)
    heads = [Head.genesis(stream_id("bench-host", f"{n:032x}")) for n in range(streams)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = iter(start + timedelta(seconds=n) for n in range(10**7))
    signer = Signer(
        ChainKey(KEY), "bench-host", state,
        lambda checkpoint: write_checkpoint(es, settings.checkpoints_target, checkpoint),
        interval=60.0, now=lambda: next(clock),
    )  # fmt: skip
    for n in range(events):
        doc = orjson.loads(orjson.dumps(shapes[n % len(shapes)]))
        event_id = f"bench-{n:09d}"
        doc["event"]["id"] = event_id
        doc["@timestamp"] = (start + timedelta(milliseconds=n)).isoformat()
        doc["event"]["hash"] = content_digest(doc)
        which = n % streams
        heads[which] = step(heads[which], event_id, doc)
        doc["event"]["ingested"] = doc["@timestamp"]
        yield {"_op_type": "create", "_index": settings.events_target, "_id": event_id,
               "_source": doc}  # fmt: skip
        if (n + 1) % SIGN_EVERY == 0 or n + 1 == events:
            signer.checkpoint([(h, None) for h in heads], [], final=n + 1 == events)


def fill(es: Elasticsearch, url: str, events: int, streams: int, work: Path) -> Settings:
    settings = Settings(es_url=[url], namespace="bv" + uuid.uuid4().hex[:8])
    install(es, settings.events_target, settings.changes_target)
    started = time.perf_counter()
    stream = actions(es, settings, events, streams, work / settings.namespace)
    for ok, item in helpers.streaming_bulk(es, stream, chunk_size=2_000, raise_on_error=False):
        if not ok:
            raise SystemExit(f"indexing failed: {item}")
    es.indices.refresh(index=[settings.events_target, settings.checkpoints_target])
    print(f"  filled {events:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    return settings


def measure(url: str, settings: Settings, key: Path, events: int, work: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "agent", "verify", "--es-url", url]
    command += ["--namespace", settings.namespace, "--key-file", str(key)]
    out = work / f"verify-{settings.namespace}.txt"
    child = Child(command, env={**os.environ}, stdout=out)
    usage = child.wait()
    assert usage is not None
    last = out.read_text().strip().splitlines()[-1:]
    return {
        "events": events,
        "exit": usage.status,
        "seconds": round(usage.wall, 1),
        "events_per_s": round(events / usage.wall),
        "cpu_s": round(usage.cpu, 1),
        "peak_rss_mib": round(usage.peak_rss_mib, 1),
        "summary": last[0] if last else "",
    }


def _delete_one(es: Elasticsearch, settings: Settings, event_id: str) -> None:
    found = es.search(index=settings.events_target, query={"ids": {"values": [event_id]}})
    for hit in found.body["hits"]["hits"]:
        es.delete(index=hit["_index"], id=hit["_id"], refresh=True)


def _remove(es: Elasticsearch, settings: Settings) -> None:
    """Best effort (a distribution without the data stream API keeps them until wiped)."""
    for target in (settings.events_target, settings.checkpoints_target):
        for path in (f"/_data_stream/{target}", f"/{target}"):
            with contextlib.suppress(ApiError):
                es.perform_request("DELETE", path, headers={"accept": "application/json"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--es-url")
    parser.add_argument("--keep-node", action="store_true")
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument(
        "--tamper",
        action="store_true",
        help="also delete one event a tenth of the way in and verify again (the in-memory "
        "walk of a damaged stream, window by window)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, _node(args) as (url, _pause, _resume):
        work = Path(tmp)
        key = work / "chain.key"
        key.write_bytes(KEY)
        es = Elasticsearch(url, request_timeout=300)
        rows = []
        for events in args.events:
            print(f"verify over {events:,} events in {args.streams} stream(s):", flush=True)
            settings = fill(es, url, events, args.streams, work)
            row = measure(url, settings, key, events, work)
            rows.append(row)
            print(f"  {row['events_per_s']:,} events/s, {row['seconds']} s, "
                  f"CPU {row['cpu_s']} s, peak RSS {row['peak_rss_mib']} MiB, "
                  f"exit {row['exit']}", flush=True)  # fmt: skip
            print(f"  {row['summary']}", flush=True)
            if args.tamper:
                _delete_one(es, settings, f"bench-{events // 10:09d}")
                row = measure(url, settings, key, events, work)
                row["tampered"] = True
                rows.append(row)
                print(f"  one event deleted: {row['events_per_s']:,} events/s, "
                      f"{row['seconds']} s, peak RSS {row['peak_rss_mib']} MiB, "
                      f"exit {row['exit']}", flush=True)  # fmt: skip
                print(f"  {row['summary']}", flush=True)
            if not args.keep_data:
                _remove(es, settings)
        print(orjson.dumps(rows).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
