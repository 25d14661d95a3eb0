"""``appmixer-audit normalize [FILE|-]``: the normalizer on a file or stdin, without Elasticsearch.

For debugging a pipeline and for tests: what the agent would index, line by line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click
import orjson

from agent.errors import ConfigError
from agent.files.identity import fingerprint, read_key
from cli import EXIT_OK, EXIT_REJECTED
from cli.options import build_settings, config_option


def file_identity(handle: BinaryIO, fingerprint_bytes: int) -> str:
    """The content id the agent's tailer gives this file, so derived ids agree with ``run``.

    A file whose first line is not complete yet has no such id; its head is hashed instead.
    """
    key = read_key(handle.fileno(), fingerprint_bytes)
    if key is not None:
        return key.content_id
    return fingerprint(os.pread(handle.fileno(), fingerprint_bytes, 0))


def lines_with_offsets(handle: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, byte offset of its first byte, the line without its ending)."""
    offset = 0
    for number, raw in enumerate(handle, 1):
        # The same bytes the tailer hands the agent: no "\n", no "\r" before it.
        line = raw[:-1] if raw.endswith(b"\n") else raw
        yield number, offset, line[:-1] if line.endswith(b"\r") else line
        offset += len(raw)


@click.command(
    epilog=(
        "Output: one event document per line on stdout. With --with-changes every line is "
        'an envelope instead: {"_index": TARGET, "_id": ID, "_source": DOC}, for the '
        "events (logs-appmixer.audit-NAMESPACE) and for the companion change documents "
        "(logs-appmixer.audit_changes-NAMESPACE) alike, in the order they would be indexed. "
        'Each rejected line goes to stderr as {"line", "offset", "field", "reason"}; a '
        'summary ("12 normalized, 1 skipped, 2 rejected") ends stderr. Exit status 0, or 3 '
        "when any line was rejected."
    )
)
@click.argument("file", required=False, default="-", type=click.Path(allow_dash=True))
@click.option("--namespace", help="Data stream namespace (default: default).")
@click.option("--with-changes", is_flag=True, help="Also print the change documents.")
@click.option("--host-name", help="Host or pod name recorded in host.name and derived ids.")
@click.option("--envelope-key", help="Key of the audit record inside pino/bunyan lines.")
@click.option("--diff-max-depth", type=int, help="Compare deeper subtrees as a whole.")
@click.option("--diff-max-changes", type=int, help="Keep at most this many changes.")
@click.option("--diff-max-value-chars", type=int, help="Cut longer values (marked).")
@click.option("--redact-key", "redact_keys", multiple=True, help="Extra key regex to redact.")
@click.option("--redact-value", "redact_values", multiple=True, help="Extra value regex to redact.")
@config_option
def normalize(
    *,
    file: str,
    namespace: str | None,
    with_changes: bool,
    host_name: str | None,
    envelope_key: str | None,
    diff_max_depth: int | None,
    diff_max_changes: int | None,
    diff_max_value_chars: int | None,
    redact_keys: tuple[str, ...],
    redact_values: tuple[str, ...],
    config_file: Path | None,
) -> None:
    """Print normalized documents as NDJSON, without Elasticsearch."""
    from agent.normalize import Normalized, NormalizeOptions, Normalizer, Rejected, Source

    settings = build_settings(
        config_file,
        namespace=namespace,
        host_name=host_name,
        envelope_key=envelope_key,
        diff_max_depth=diff_max_depth,
        diff_max_changes=diff_max_changes,
        diff_max_value_chars=diff_max_value_chars,
        redact_keys=list(redact_keys) or None,
        redact_values=list(redact_values) or None,
    )
    try:
        normalizer = Normalizer(NormalizeOptions.from_settings(settings))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    out = sys.stdout.buffer
    err = sys.stderr.buffer
    counts = {"normalized": 0, "skipped": 0, "rejected": 0}
    handle: BinaryIO
    if file == "-":
        handle, path, file_id = sys.stdin.buffer, "-", "stdin"
    else:
        try:
            handle = Path(file).open("rb")  # noqa: SIM115 (closed below, after the loop)
        except OSError as exc:
            raise click.FileError(file, hint=exc.strerror) from None
        path, file_id = str(Path(file).resolve()), file_identity(handle, settings.fingerprint_bytes)
    try:
        for number, offset, line in lines_with_offsets(handle):
            outcome = normalizer(line, Source(path, file_id, offset, settings.host_name))
            if isinstance(outcome, Normalized):
                counts["normalized"] += 1
                if not with_changes:
                    out.write(orjson.dumps(outcome.event) + b"\n")
                    continue
                out.write(_envelope(settings.events_target, outcome.event_id, outcome.event))
                for change_id, doc in outcome.changes:
                    out.write(_envelope(settings.changes_target, change_id, doc))
            elif isinstance(outcome, Rejected):
                counts["rejected"] += 1
                report = {
                    "line": number,
                    "offset": offset,
                    "field": outcome.field,
                    "reason": outcome.reason,
                }
                err.write(orjson.dumps(report) + b"\n")
            else:
                counts["skipped"] += 1
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    out.flush()
    summary = ", ".join(f"{count} {name}" for name, count in counts.items())
    err.write(summary.encode() + b"\n")
    err.flush()
    sys.exit(EXIT_REJECTED if counts["rejected"] else EXIT_OK)


def _envelope(index: str, doc_id: str, doc: dict[str, object]) -> bytes:
    return orjson.dumps({"_index": index, "_id": doc_id, "_source": doc}) + b"\n"
