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
@click.option("--kibana-url", help="Also import the dashboards into this Kibana.")
@click.option("--kibana-space", help="Kibana space to import into (default: default).")
@click.option(
    "--kibana-wait",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for Kibana's status to be available.",
)
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
    *,
    kibana_space: str | None,
    kibana_wait: float,
    **flags: Any,
) -> None:
    """Install templates, lifecycle policy and roles, as the cluster supports them.

    Detects what the cluster has: data streams (else a plain index named like the target),
    index lifecycle management (else no policy), security (else no roles). Prints one line
    per item: installed, updated, unchanged, skipped (with the reason) or failed. With
    --kibana-url, waits for Kibana and imports the dashboards (overwrite, fixed ids), printing
    each object as created, updated or error. Exit 0 when nothing failed, 1 otherwise.
    """
    from agent.cli.kibana import import_into_kibana
    from indexer.setup import install

    settings = build_settings(
        config_file, kibana_url=kibana_url, kibana_space=kibana_space, **flags
    )
    with elasticsearch_client(settings, refused="setup failed") as client:
        report = install(
            client,
            settings.events_target,
            settings.changes_target,
            retention=retention,
            kibana_url=settings.kibana_url,
        )
    kibana = None if settings.kibana_url is None else import_into_kibana(settings, wait=kibana_wait)
    if output_format == "json":
        body = report.as_dict()
        if kibana is not None:
            body["kibana"] = kibana.report.as_dict() if kibana.report else {"ok": False}
            body["kibana"]["error"] = kibana.failure()
            body["ok"] = body["ok"] and kibana.ok
        click.echo(json.dumps(body, sort_keys=True))
    else:
        for line in report.lines() + (kibana.report.lines() if kibana and kibana.report else []):
            click.echo(line)
    if kibana is not None and not kibana.ok:
        click.echo(f"appmixer-audit: {kibana.failure()}", err=True)
    ok = report.ok and (kibana is None or kibana.ok)
    sys.exit(EXIT_OK if ok else EXIT_FAILURE)
