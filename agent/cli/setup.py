"""``appmixer-audit setup``: install the index side and print, per item, what happened.

Safe to run from every sidecar at start: unchanged resources are left alone, and several
runs at once converge on the same state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli import EXIT_FAILURE, EXIT_OK
from agent.cli.options import build_settings, elasticsearch_client, es_options, format_option


def _retention(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from indexer.setup import validate_retention

    try:
        return validate_retention(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--kibana-url", help="Import the dashboards into this Kibana (when there are some).")
@click.option(
    "--retention",
    default="365d",
    show_default=True,
    callback=_retention,
    help="Delete events this long after rollover (where the cluster has lifecycle management).",
)
@format_option("text", "json", help_text="text for people, json (one object) for scripts.")
@es_options
def setup(
    kibana_url: str | None,
    retention: str,
    output_format: str,
    config_file: Path | None,
    **flags: Any,
) -> None:
    """Install templates, lifecycle policy and roles, as the cluster supports them.

    Detects what the cluster has: data streams (else a plain index named like the target),
    index lifecycle management (else no policy), security (else no roles). Prints one line
    per item: installed, updated, unchanged, skipped (with the reason) or failed. Exit 0 when
    nothing failed, 1 otherwise.
    """
    from indexer.setup import install

    settings = build_settings(config_file, kibana_url=kibana_url, **flags)
    with elasticsearch_client(settings, refused="setup failed") as client:
        report = install(
            client,
            settings.events_target,
            settings.changes_target,
            retention=retention,
            kibana_url=settings.kibana_url,
        )
    if output_format == "json":
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILURE)
