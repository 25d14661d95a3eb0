"""``appmixer-audit verify [--since T]``: replay the hash chains against the signed checkpoints.

Exit status 0 when everything stored is intact, 1 when anything is missing, altered,
inserted or out of order (each named on its own line), or a checkpoint's signature fails.
Events newer than the last signed checkpoint are counted as unsigned, not failed: the agent
signs every ``CHAIN_CHECKPOINT_INTERVAL`` seconds and when it stops.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli import EXIT_FAILURE, EXIT_OK
from agent.cli.options import build_settings, elasticsearch_client, es_options, format_option
from agent.cli.search import _time_option

if TYPE_CHECKING:
    from chain.verify import Report


@click.command(
    epilog=(
        "Keys: --key-file (repeatable, for the keys before and after a rotation) or "
        "APPMIXER_AUDIT_CHAIN_KEY_FILE. Without a key the links between stored events are "
        "still checked, but no checkpoint can be trusted, so a cut-off tail or a recomputed "
        "chain cannot be seen. --checkpoints adds the agent's local copies "
        "(STATE_DIR/chain-checkpoints.ndjson), which also cover checkpoints deleted from "
        "the index."
    )
)
@click.option(
    "--since",
    callback=_time_option,
    help="Start at the last checkpoint signed at or before T (ISO 8601, or e.g. 24h, 7d).",
)
@click.option(
    "--key-file",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="HMAC key file the checkpoints were signed with (repeatable).",
)
@click.option(
    "--checkpoints",
    "checkpoint_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Local checkpoint file(s) of an agent, NDJSON (repeatable).",
)
@format_option("text", "json", help_text="Findings as lines, or one JSON report.")
@es_options
def verify(
    *,
    since: datetime | None,
    key_files: tuple[Path, ...],
    checkpoint_files: tuple[Path, ...],
    output_format: str,
    config_file: Path | None,
    **flags: object,
) -> None:
    """Replay the hash chains from the index: intact (exit 0) or each finding (exit 1)."""
    from chain.checkpoint import ChainKey, KeyFileError
    from chain.state import read_local_checkpoints
    from indexer.chain import verify as replay

    settings = build_settings(config_file, **flags)
    paths = list(key_files) or ([settings.chain_key_file] if settings.chain_key_file else [])
    try:
        keys = [ChainKey.from_file(path) for path in paths]
        local = [c for path in checkpoint_files for c in read_local_checkpoints(path)]
    except (KeyFileError, ValueError) as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    if not keys:
        click.echo(
            "appmixer-audit: no chain key given: only the links between stored events are "
            "checked, no checkpoint is trusted",
            err=True,
        )
    with elasticsearch_client(settings, refused="cannot read the chains") as es:
        report = replay(
            es,
            settings.events_target,
            settings.checkpoints_target,
            keys,
            since=since,
            local=local,
        )
    if output_format == "json":
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        for finding in report.all_findings:
            click.echo(finding.line())
        click.echo(summary_line(settings.events_target, report))
    sys.exit(EXIT_OK if report.intact else EXIT_FAILURE)


def summary_line(target: str, report: Report) -> str:
    """The last line: the verdict, then what was covered."""
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items())
    verdict = "intact" if report.intact else f"NOT intact: {counts}"
    summary = report.as_dict()
    other_keys = report.checkpoints_unverifiable
    return (
        f"{target}: {verdict}; {_counted(summary['streams'], 'stream')}, "
        f"{_counted(summary['events_intact'], 'event')} verified, "
        f"{summary['events_unsigned']} newer than the last signed checkpoint; "
        f"{_counted(report.checkpoints_valid, 'checkpoint')} valid"
        + (f", {other_keys} under keys not given" if other_keys else "")
    )


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
