"""The per-line path's output for given files, as bytes, for comparing two builds.

    python -m devtools.differential [--small-caps] FILE [FILE ...] > OUT
    python -m devtools.differential [--small-caps] --serve   # a line in, its record out

Each line of each file goes through the reader's own per-line step
(:class:`agent.reader.Preparer`: normalize, chain in read order, encode) and then into a bulk
request body with a fixed ship time, exactly as the sink would send it. One NDJSON record is
written per line: the encoded body and the chain place of an event, or the reason, field and
stage of a rejection, or the reason of a skip. Two interpreters (the pure-Python source, and
the compiled build) given the same files must write the same bytes; the differential test
(``tests/unit/test_compiled_differential.py``) holds them to that.

Lines are cut as the tailer cuts them: at ``\\n``, a ``\\r`` before it dropped, a line past
``--line-max`` kept as its first bytes and its length.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from agent.evidence.chains import Chains
from agent.files import FileKey, Line
from agent.files._tracked import HEAD_BYTES
from agent.normalize import NormalizeOptions, Normalizer, Rejected, Skipped
from agent.reader import Preparer
from indexer.bulkbody import bulk_body
from indexer.sink import Doc, Parcel

HOST = "differential"
INGESTED = b'"2026-01-01T00:00:00.000Z"'
EVENTS, CHANGES = "logs-appmixer.audit-diff", "logs-appmixer.audit_changes-diff"
SMALL_CAPS: dict[str, Any] = {
    "diff_max_depth": 3,
    "diff_max_changes": 4,
    "diff_max_value_chars": 24,
    "redact_keys": ("^note$",),
    "redact_values": ("^tok-[a-z0-9]+$",),
}


def lines_of(data: bytes, key: FileKey, path: str, line_max: int, start: int = 0) -> Iterator[Line]:
    """The complete lines of ``data``, found at ``start`` in its file, as the tailer hands
    them over (a last partial line is not complete, so it is not one)."""
    offset = 0
    while (newline := data.find(b"\n", offset)) >= 0:
        stop = newline - 1 if newline > offset and data[newline - 1] == 0x0D else newline
        body = data[offset:stop]
        oversized = len(body) if len(body) > line_max else 0
        yield Line(
            key=key,
            path=path,
            offset=start + offset,
            end=start + newline + 1,
            data=body[:HEAD_BYTES] if oversized else body,
            oversized=oversized,
        )
        offset = newline + 1


def record(line: Line, prepare: Preparer) -> bytes:
    """What the per-line path makes of one line, as one NDJSON record."""
    item = prepare(line)
    out: dict[str, Any] = {"offset": line.offset}
    outcome = item.outcome
    if isinstance(outcome, Skipped):
        out["skipped"] = outcome.reason
    elif isinstance(outcome, Rejected):
        out["rejected"] = [outcome.reason, outcome.field, str(outcome.stage)]
    else:
        out["body"] = body_of(outcome).decode()
    head = item.chain.head
    out["chain"] = [head.stream, head.seq, head.hash, head.event_id, item.chain.prev]
    return orjson.dumps(out) + b"\n"


def body_of(parcel: Parcel) -> bytes:
    docs = [Doc(EVENTS, parcel.event_id, parcel.event)]
    docs += [Doc(CHANGES, change_id, body) for change_id, body in parcel.changes]
    return bulk_body(docs, INGESTED)


def preparer(*, small_caps: bool, line_max: int) -> Preparer:
    """The per-line step with fixed settings and a chain state starting empty."""
    options = NormalizeOptions(host_name=HOST, **(SMALL_CAPS if small_caps else {}))
    return preparer_with(options, HOST, line_max)


def preparer_with(options: NormalizeOptions, host: str, line_max: int) -> Preparer:
    """The per-line step for these options and host, its chain state starting empty (no
    state saved: nothing is resumed)."""
    return Preparer(
        Normalizer(options), Chains(host, lambda *_: None), host_name=host, line_max=line_max
    )


def serve(inp: BinaryIO, out: BinaryIO, prepare: Preparer) -> None:
    """One record for each line read, flushed at once (a line is one stream's next line)."""
    key = FileKey(1, 1, f"{1:016x}")
    offset = 0
    for raw in iter(inp.readline, b""):
        if not raw.endswith(b"\n"):
            break  # not a complete line: the tailer would wait for the rest
        out.write(record(next(lines_of(raw, key, "serve", prepare.line_max, offset)), prepare))
        out.flush()
        offset += len(raw)


def run(paths: list[Path], out: BinaryIO, *, small_caps: bool, line_max: int) -> int:
    """Write the records of every line of ``paths``; how many lines there were."""
    prepare = preparer(small_caps=small_caps, line_max=line_max)
    count = 0
    for index, path in enumerate(paths):
        key = FileKey(1, index + 1, f"{index + 1:016x}")
        for line in lines_of(path.read_bytes(), key, str(path.name), line_max):
            out.write(record(line, prepare))
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--serve", action="store_true", help="lines from stdin, one at a time")
    parser.add_argument("--small-caps", action="store_true", help="tight diff caps, redaction")
    parser.add_argument("--line-max", type=int, default=4 * 1024 * 1024)
    args = parser.parse_args(argv)
    if args.serve:
        prepare = preparer(small_caps=args.small_caps, line_max=args.line_max)
        serve(sys.stdin.buffer, sys.stdout.buffer, prepare)
        return 0
    run(args.files, sys.stdout.buffer, small_caps=args.small_caps, line_max=args.line_max)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
