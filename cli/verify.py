"""``appmixer-audit verify [--since T]``: replay the hash chains against the signed checkpoints.

Exit status (docs/chain.md, "Exit status"):

- 0: something was verified (a valid signed checkpoint covers at least one stored event)
  and nothing is wrong;
- 1: a finding: missing, altered, inserted, out of order, a fork, unsigned events outside
  the window, a bad or missing checkpoint (each named on its own line);
- 2: a configuration error (an unusable key file or local checkpoint file);
- 4: no finding, but nothing could be verified: no checkpoint under the keys given, no
  events, or only events newer than the last checkpoint (``verify || alert`` fires);
- 5: Elasticsearch could not be read (unreachable, TLS, refused): no verdict at all.

Events after an agent's last checkpoint are counted as newer, not failed, while that agent
is live (its last checkpoint is not final and at most two intervals old) and they are at
most two intervals older than it; otherwise they are an ``UNSIGNED`` finding.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli import EXIT_FAILURE, EXIT_OK, EXIT_UNREACHABLE, EXIT_UNVERIFIED, EXIT_USAGE
from cli.options import build_settings, elasticsearch_client, es_options, format_option
from cli.search import _time_option

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
    """Replay the hash chains from the index: intact (exit 0), each finding (exit 1),
    nothing verifiable (exit 4), index unreadable (exit 5)."""
    from agent.evidence.chains import read_local_copy
    from chain.checkpoint import ChainKey, Checkpoint, KeyFileError
    from chain.verify import Finding
    from indexer.chain_index import verify as replay

    settings = build_settings(config_file, **flags)
    paths = list(key_files) or ([settings.chain_key_file] if settings.chain_key_file else [])
    local: list[tuple[str, Checkpoint]] = []
    malformed: list[Finding] = []
    try:
        keys = [ChainKey.from_file(path) for path in paths]
        for path in checkpoint_files:
            good, bad = read_local_copy(path)
            local.extend(good)
            malformed.extend(Finding("bad_checkpoint", why, doc_id=where) for where, why in bad)
    except (KeyFileError, ValueError) as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if not keys:
        click.echo(
            "appmixer-audit: no chain key given: only the links between stored events are "
            "checked, no checkpoint is trusted",
            err=True,
        )
    with elasticsearch_client(
        settings, refused="cannot read the chains", exit_code=EXIT_UNREACHABLE
    ) as es:
        report = replay(
            es,
            settings.events_target,
            settings.checkpoints_target,
            keys,
            since=since,
            local=local,
            local_problems=malformed,
        )
    if output_format == "json":
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        for finding in report.all_findings:
            click.echo(finding.line())
        click.echo(summary_line(settings.events_target, report))
    codes = {"intact": EXIT_OK, "not_intact": EXIT_FAILURE, "unverified": EXIT_UNVERIFIED}
    sys.exit(codes[report.verdict])


def summary_line(target: str, report: Report) -> str:
    """The last line: the verdict, then what was covered."""
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items())
    verdict = {
        "intact": "intact",
        "not_intact": f"NOT intact: {counts}",
        "unverified": "NOTHING VERIFIED (no finding, but no event is covered by a valid "
        "signed checkpoint under the keys given)",
    }[report.verdict]
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
