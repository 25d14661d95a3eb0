"""The ``appmixer-audit`` command line.

Each command lives in its own module and is imported only when used, so ``--help`` and the
hot ``normalize`` path do not pay for the Elasticsearch client. Exit status, for scripts:
0 success, 1 failure, 2 usage or configuration error, 3 done but some input was rejected;
``verify`` also exits 4 when nothing could be verified and 5 when Elasticsearch could not
be read (unreachable, TLS, refused);
``run --once`` stopped by a signal before it finished exits 128 + the signal's number.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import click

from agent import __version__
from agent.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_UNVERIFIED = 4  # verify: no finding, but nothing vouched for either
EXIT_UNREACHABLE = 5  # verify: the index could not be read (connection, TLS, refusal)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("cli.run", "run", "Tail audit logs and ship them to Elasticsearch."),
    "normalize": (
        "cli.normalize",
        "normalize",
        "Print normalized documents as NDJSON, without Elasticsearch.",
    ),
    "setup": ("cli.setup", "setup", "Install templates, lifecycle policy and roles."),
    "search": ("cli.search", "search", "Search audit events: Action, User, Created."),
    "show": ("cli.search", "show", "Show one event with its diff table."),
    "simulate": ("cli.simulate", "simulate", "Write realistic Appmixer audit NDJSON."),
    "verify": (
        "cli.verify",
        "verify",
        "Replay the hash chains: intact, or what is missing, altered or inserted.",
    ),
    "dev-es": ("cli.dev_es", "dev_es", "Run a local Elasticsearch node for trying out."),
    "demo": ("cli.demo", "demo", "The one-command tour: node, setup, logs, ship, search."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _help = COMMANDS[cmd_name]
        # A command's imports make only long-lived objects (modules, classes, tables): the
        # cyclic collector finds nothing among them, so it waits until they are in.
        collecting = gc.isenabled()
        gc.disable()
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        finally:
            if collecting:
                gc.enable()
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="appmixer-audit")
def cli() -> None:
    """Ship Appmixer audit logs into Elasticsearch as ECS events with before/after diffs."""


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: every operator mistake is one line on stderr, never a traceback.

    Usage errors (a bad flag, a value click refuses) and configuration errors exit 2; an
    interrupt before a command took over its own signals exits 130.
    """
    try:
        return cli.main(args=argv, prog_name="appmixer-audit", standalone_mode=False)
    except ConfigError as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        where = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else None
        message = " ".join(exc.format_message().split())
        hint = f" (see {where} --help)" if where else ""
        click.echo(f"appmixer-audit: {message}{hint}", err=True)
        # A file named on the command line that cannot be opened is the caller's mistake.
        sys.exit(EXIT_USAGE if isinstance(exc, click.FileError) else exc.exit_code)
    except click.Abort:
        click.echo("appmixer-audit: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
