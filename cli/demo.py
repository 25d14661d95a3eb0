"""``appmixer-audit demo``: the one-command tour on the embedded default.

Starts (or reuses) the local dev node, installs the templates, writes simulated Appmixer
audit logs, ships them with ``run --once`` (their hash chains signed with a demo key made
on the first run), checks them with ``verify`` and prints the newest events as the Audit Logs page's
table.

Every run is new traffic: a fresh seed and event times that end as the run starts, so a second
tour ships and verifies its own events and its newest heads the table. ``--seed`` replays one
fixed day byte for byte instead: run twice, the agent recognises what it already shipped.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from agent.config import default_state_dir
from cli import EXIT_FAILURE, EXIT_OK, EXIT_REJECTED, EXIT_UNVERIFIED
from common.log import configure_logging


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", err=True)


@click.command()
@click.option("--events", default=2000, show_default=True, help="Simulated events to ship.")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Replay the same simulated day byte for byte (default: new events every run).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: default_state_dir() / "demo",
    show_default="~/.local/state/appmixer-audit/demo",
    help="Where the demo's logs, checkpoints and dead letters go.",
)
@click.option("--namespace", default="demo", show_default=True)
@click.option(
    "--es-url",
    help="Tour this node (no security) instead of starting the local dev node.",
)
def demo(events: int, seed: int | None, workdir: Path, namespace: str, es_url: str | None) -> None:
    """Run the whole path on a local node: dev-es, setup, simulate, ship, search."""
    configure_logging("warning")
    url = es_url or _start_dev_node()
    click.echo(f"Elasticsearch: {url}", err=True)

    me = [sys.executable, "-m", "agent"]
    common = ["--es-url", url, "--namespace", namespace]
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "logs" / "audit.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # A rerun rewrites the file rather than appending a second copy.
    log_file.unlink(missing_ok=True)
    key_file = workdir / "chain.key"
    if not key_file.exists():
        key_file.write_text(os.urandom(32).hex() + "\n")
        key_file.chmod(0o600)
    # One state directory per target: its registry and checkpoint chain describe what was
    # shipped there, and a tour of another node or namespace must not vouch for (or miss)
    # streams stored elsewhere.
    target = hashlib.sha256(f"{url}\0{namespace}".encode()).hexdigest()[:12]
    state_dir = workdir / "state" / target
    started = datetime.now(UTC).isoformat()
    timing: list[str] = []
    replay = seed is not None  # a day shipped before ships nothing new: nothing to verify
    if seed is None:
        # A new day ending now: this run's newest event heads the table.
        seed = secrets.randbelow(2**31)
        timing = ["--end", started]

    # run --once exits 3 when lines were dead-lettered: the tour goes on and shows them.
    done = frozenset({EXIT_OK, EXIT_REJECTED})
    # A replayed day (--seed) was shipped before: nothing new is there for verify to vouch for.
    verified = done | {EXIT_UNVERIFIED} if replay else done
    steps: list[tuple[str, list[str], frozenset[int]]] = [
        ("installing index templates", [*me, "setup", *common], done),
        (
            f"simulating {events} Appmixer audit events (seed {seed}) into {log_file}",
            [
                *me,
                "simulate",
                "--events",
                str(events),
                "--seed",
                str(seed),
                *timing,
                "--out",
                str(log_file),
            ],
            done,
        ),
        (
            "shipping them (run --once)",
            [
                *me,
                "run",
                "--once",
                "--path",
                str(log_file),
                "--state-dir",
                str(state_dir),
                "--log-level",
                "warning",
                *common,
            ],
            done,
        ),
        (
            "verifying the hash chains against the signed checkpoints",
            [*me, "verify", "--key-file", str(key_file), "--since", started, *common],
            verified,
        ),
        ("the ten newest events", [*me, "search", "--size", "10", *common], done),
    ]
    env = {**os.environ, "APPMIXER_AUDIT_CHAIN_KEY_FILE": str(key_file)}
    for title, command, accepted in steps:
        _step(title)
        result = subprocess.run(command, check=False, env=env)
        if result.returncode == EXIT_UNVERIFIED and result.returncode in accepted:
            click.echo("(nothing new since this run started: that day was shipped before)")
        elif result.returncode not in accepted:
            click.echo(f"appmixer-audit: demo step failed: {title}", err=True)
            sys.exit(EXIT_FAILURE)
    _step(f"done: try `appmixer-audit search --es-url {url} --namespace {namespace} --type update`")


def _start_dev_node() -> str:
    from devtools.devnode import DevNode, DevNodeError

    _step("starting the local Elasticsearch node (first run downloads it once)")
    try:
        return DevNode().start()
    except DevNodeError as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
