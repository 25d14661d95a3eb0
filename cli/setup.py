"""``appmixer-audit setup``: install the index side and print, per item, what happened.

Safe to run from every sidecar at start: unchanged resources are left alone, and several
runs at once converge on the same state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli import EXIT_FAILURE, EXIT_OK
from cli.options import build_settings, elasticsearch_client, es_options, format_option

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from indexer.access import ApiKey
    from indexer.setup import SetupReport


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
@click.option(
    "--create-api-key",
    "key_role",
    type=click.Choice(["writer", "reader"]),
    help="Then mint an API key limited to this role; the encoded key is the last line.",
)
@click.option("--api-key-name", help="Name of the minted key (default: appmixer-audit-ROLE-TIME).")
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
    key_role: str | None,
    api_key_name: str | None,
    **flags: Any,
) -> None:
    """Install templates, lifecycle policy and roles, as the cluster supports them.

    Detects what the cluster has: data streams (else a plain index named like the target),
    index lifecycle management (else no policy), security (else no roles). Prints one line
    per item: installed, updated, unchanged, skipped (with the reason) or failed. With
    --kibana-url, waits for Kibana and imports the dashboards (overwrite, fixed ids), printing
    each object as created, updated or error. Exit 0 when nothing failed, 1 otherwise.

    --create-api-key needs an admin credential (manage_api_key) and security on the cluster:
    the key gets exactly the role's privileges from mappings/roles/ and is printed once.
    """
    from cli.kibana import import_into_kibana
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
        key = _mint(client, report, key_role, api_key_name) if key_role else None
    kibana = None if settings.kibana_url is None else import_into_kibana(settings, wait=kibana_wait)
    if output_format == "json":
        body = report.as_dict()
        if kibana is not None:
            body["kibana"] = kibana.report.as_dict() if kibana.report else {"ok": False}
            body["kibana"]["error"] = kibana.failure()
            body["ok"] = body["ok"] and kibana.ok
        if key is not None:
            body["api_key"] = {"id": key.id, "name": key.name, "role": key_role}
            body["api_key"]["encoded"] = key.encoded
        click.echo(json.dumps(body, sort_keys=True))
    else:
        for line in report.lines() + (kibana.report.lines() if kibana and kibana.report else []):
            click.echo(line)
        if key is not None:  # last, so `| tail -1` is the key
            click.echo(f"API key {key.name} (id {key.id}) for the {key_role} role; shown once:")
            click.echo(key.encoded)
    if kibana is not None and not kibana.ok:
        click.echo(f"appmixer-audit: {kibana.failure()}", err=True)
    ok = report.ok and (kibana is None or kibana.ok)
    sys.exit(EXIT_OK if ok else EXIT_FAILURE)


def _mint(client: Elasticsearch, report: SetupReport, role: str, name: str | None) -> ApiKey | None:
    """A key for the role once setup succeeded; none when setup failed (it said why)."""
    from indexer.access import create_api_key

    if not report.ok:
        return None
    if not report.capabilities.security:
        click.echo("appmixer-audit: API keys need security on the cluster", err=True)
        sys.exit(EXIT_FAILURE)
    return create_api_key(client, "writer" if role == "writer" else "reader", name=name)
