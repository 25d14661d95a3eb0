"""``appmixer-audit simulate``: realistic Appmixer audit NDJSON for demos, tests, benchmarks."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

import click

from cli import EXIT_OK


def _time_ms(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    if value == "now":
        return int(time.time() * 1000)
    from agent.normalize.timestamps import TimeError, parse_time

    try:
        text = parse_time(value)
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@click.command(
    epilog=(
        "Output is deterministic: the same --seed and options give byte-identical lines. "
        "Without --rate, event times start at --start (default 2026-11-25T08:00:00Z) and "
        "advance about 1.5 s per event (--end instead places the last event at that time); "
        "with --rate they start now and follow the pace, and "
        "each line is flushed as it is written. --out appends to the file (creating it), as "
        "a service appends to its log. --noise adds that fraction of ordinary service log "
        "lines on top of the N audit events (the normalizer skips them). --scenario writes "
        "one day the detection rules are tested on instead: benign (2026-11-23, everyday "
        "traffic and near misses) or attack (2026-11-24, the same plus one of each attack "
        "the rules in detection-rules/ detect); it takes --seed and --out only."
    )
)
@click.option("--events", "-n", type=click.IntRange(min=0), help="Audit events.")
@click.option(
    "--scenario",
    type=click.Choice(["benign", "attack"]),
    help="Write one scenario day of the detection rules instead of --events N.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append to this file instead of writing to stdout.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Lines per second, paced and flushed one by one (a live stream).",
)
@click.option(
    "--noise",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Probability of a service log line before each event.",
)
@click.option("--start", help='First event time: ISO 8601, epoch ms, or "now".')
@click.option("--end", help='Last event time instead of --start: ISO 8601, epoch ms, or "now".')
def simulate(
    *,
    events: int | None,
    scenario: Literal["benign", "attack"] | None,
    out: Path | None,
    seed: int,
    rate: float | None,
    noise: float,
    start: str | None,
    end: str | None,
) -> None:
    """Write realistic Appmixer audit NDJSON."""
    from devtools.scenarios import write_day
    from devtools.simulate import DEFAULT_GAP_MS, start_for_end, write_events

    if scenario is None and events is None:
        raise click.UsageError("give --events N, or --scenario benign|attack")
    if scenario is not None and (events, rate, noise, start, end) != (None, None, 0.0, None, None):
        raise click.UsageError("--scenario writes a fixed day: it takes --seed and --out only")
    if end is not None and (start is not None or rate is not None):
        raise click.UsageError("--end places the last event: it takes neither --start nor --rate")
    start_ms = _time_ms(start, "--start")
    end_ms = _time_ms(end, "--end")
    if end_ms is not None and events is not None:
        start_ms = start_for_end(end_ms, events, seed, noise=noise, mean_gap_ms=DEFAULT_GAP_MS)
    handle: BinaryIO
    try:
        handle = out.open("ab") if out is not None else sys.stdout.buffer
    except OSError as exc:
        raise click.FileError(str(out), hint=exc.strerror) from None
    try:
        if scenario is not None:
            write_day(handle, scenario, seed)
        else:
            assert events is not None
            write_events(handle, events, seed, rate=rate, noise=noise, start_ms=start_ms)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        if out is not None:
            handle.close()
    sys.exit(EXIT_OK)
