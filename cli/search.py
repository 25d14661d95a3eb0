"""``appmixer-audit search`` and ``show``: Appmixer's Audit Logs page on a terminal.

The seed's RESET is running ``search`` without filters and RELOAD is running it again.
Output goes to stdout (a table, or NDJSON of the stored documents); the next-page cursor and
messages go to stderr so a pipe receives documents only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli import EXIT_FAILURE, EXIT_OK
from cli.options import build_settings, elasticsearch_client, es_options, format_option

if TYPE_CHECKING:
    pass

_CELL_CHARS = 80  # a longer value is cut in the table; --format json shows it whole


def _time_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    from indexer.search import parse_time

    if value is None:
        return None
    try:
        return parse_time(value, now=datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _cursor_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from indexer.search import decode_cursor

    if value is None:
        return None
    try:
        return decode_cursor(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def _cell(value: str) -> str:
    shown = value.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return shown if len(shown) <= _CELL_CHARS else shown[: _CELL_CHARS - 1] + "…"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart, no trailing blanks."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)
    ]
    return [
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *cells]
    ]


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


@click.command()
@click.option("--query", "-q", help="Words to find in the action, user, flow, entity or event id.")
@click.option(
    "--since",
    metavar="TIME",
    callback=_time_option,
    help="From this time (inclusive): ISO 8601 or an age (15m, 7d, 2w).",
)
@click.option(
    "--until",
    metavar="TIME",
    callback=_time_option,
    help="Up to this time (inclusive), same forms.",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["create", "update", "delete", "access"]),
    help="Event type; repeat for several.",
)
@click.option("--user", help="The acting user's email or id.")
@click.option("--flow-id", help="Only events of this flow (exact id).")
@click.option(
    "--size", default=20, show_default=True, type=click.IntRange(1, 9999), help="Events per page."
)
@click.option("--after", callback=_cursor_option, metavar="CURSOR", help="Start after this cursor.")
@click.option("--all", "all_pages", is_flag=True, help="Print every page, not just the first.")
@format_option(
    "table",
    "json",
    help_text="table: Action, User, Created (UTC), Event ID; json: one stored document per line.",
)
@es_options
def search(
    *,
    query: str | None,
    since: datetime | None,
    until: datetime | None,
    types: tuple[str, ...],
    user: str | None,
    flow_id: str | None,
    size: int,
    after: list[Any] | None,
    all_pages: bool,
    output_format: str,
    config_file: Path | None,
    **flags: Any,
) -> None:
    """Search audit events, newest first; every filter given must hold.

    --query matches each word (or "quoted phrase") against the action name, and whole
    values of the action code, user email or name, flow id, entity id or name, and event id.
    Times without a zone are UTC.

    Paging: --size events are printed; when more match, the line "next page: --after
    CURSOR" goes to stderr; run the same command with that --after to continue. --all prints
    every page instead. Exit 0, also when no events match.
    """
    from indexer.search import EVENT_HEADERS, Filters, event_row, iter_pages, search_page

    settings = build_settings(config_file, **flags)
    filters = Filters(query, since, until, types, user, flow_id)
    printed = 0
    emit: Callable[[list[dict[str, Any]]], None]
    header_done = False

    def emit_table(documents: list[dict[str, Any]]) -> None:
        nonlocal header_done
        lines = format_table(EVENT_HEADERS, [event_row(doc) for doc in documents])
        for line in lines if not header_done else lines[1:]:
            click.echo(line)
        header_done = True

    def emit_json(documents: list[dict[str, Any]]) -> None:
        for document in documents:
            click.echo(_dumps(document))

    emit = emit_json if output_format == "json" else emit_table
    with elasticsearch_client(settings) as es:
        target = settings.events_target
        pages = (
            iter_pages(es, target, filters, size=size, after=after)
            if all_pages
            else iter([search_page(es, target, filters, size=size, after=after)])
        )
        cursor = None
        for page in pages:
            if page.documents:
                emit(page.documents)
            printed += len(page.documents)
            cursor = page.cursor
    if printed == 0:
        click.echo(f"no events match (in {settings.events_target})", err=output_format == "json")
    elif cursor is not None:
        click.echo(f"next page: --after {cursor}", err=True)
    sys.exit(EXIT_OK)


def _event_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("an event id cannot be empty")
    return value


@click.command()
@click.argument("event_id", callback=_event_id)
@format_option(
    "table",
    "json",
    help_text='table: the details, then the diff; json: {"event": ..., "changes": [...]}.',
)
@es_options
def show(event_id: str, output_format: str, config_file: Path | None, **flags: Any) -> None:
    """Show one event's details and its diff table (path, change, old, new).

    The diff comes from the event's change documents, in diff order. Exit 1 when no event
    has this id.
    """
    from indexer.search import (
        DIFF_HEADERS,
        UNCHAINED_DETAILS,
        detail_rows,
        diff_rows,
        fetch_changes,
        find_event,
        matching_changes,
    )

    settings = build_settings(config_file, **flags)
    with elasticsearch_client(settings) as es:
        event = find_event(es, settings.events_target, event_id)
        if event is None:
            click.echo(f"no event with id {event_id} in {settings.events_target}", err=True)
            sys.exit(EXIT_FAILURE)
        changes = fetch_changes(es, settings.changes_target, event_id)
    if output_format == "json":
        click.echo(_dumps({"event": event, "changes": changes}))
        sys.exit(EXIT_OK)
    shown, stray = matching_changes(event, changes)
    rows = detail_rows(event)
    width = max(len(label) for label, _value in rows)
    for label, value in rows:
        note = "  (not covered by the hash chain)" if label in UNCHAINED_DETAILS else ""
        click.echo(f"{label:<{width}}  {_cell(value)}{note}")
    click.echo("")
    if stray:
        where = ", ".join("?" if index is None else str(index) for index in stray)
        click.echo(
            f"Warning: {len(stray)} change document(s) (index {where}) do not match the "
            "event's own diff, which the hash chain covers: not shown"
        )
    if not shown:
        click.echo("Diff: no changes recorded for this event")
        sys.exit(EXIT_OK)
    click.echo(f"Diff ({len(shown)} change{'s' if len(shown) != 1 else ''})")
    for line in format_table(DIFF_HEADERS, diff_rows(shown)):
        click.echo(line)
    sys.exit(EXIT_OK)
