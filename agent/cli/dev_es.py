"""``appmixer-audit dev-es``: a local Elasticsearch node for trying the agent out and for tests."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agent.cli import EXIT_FAILURE
from common.log import configure_logging

if TYPE_CHECKING:
    from devtools.devnode import DevNode

F = TypeVar("F", bound=Callable[..., Any])


def _node_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value or not value.replace("-", "").replace("_", "").isalnum():
        raise click.BadParameter(f"{value!r} must be letters, digits, - or _")
    return value


_PORT = click.IntRange(1, 65535)
NODE_OPTIONS = [
    click.option(
        "--name",
        default="default",
        show_default=True,
        callback=_node_name,
        help="Node name (one dir each).",
    ),
    click.option("--port", default=9200, show_default=True, type=_PORT, help="HTTP port."),
    click.option(
        "--transport-port", default=9300, show_default=True, type=_PORT, help="Transport port."
    ),
]


def _node_options(func: F) -> F:
    for option in reversed(NODE_OPTIONS):
        func = option(func)
    return func


def _heap(value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]", value):
        raise click.BadParameter(f"{value!r} is not a JVM heap size like 512m or 1g")
    return value


def _node(
    name: str,
    port: int,
    transport_port: int,
    *,
    heap: str = "1g",
    distribution: Path | None = None,
    security: bool | None = None,
) -> DevNode:
    from devtools.devnode import DevNode

    return DevNode(
        name, port, transport_port, heap=heap, distribution=distribution, security=security
    )


@click.group("dev-es")
def dev_es() -> None:
    """Run a local single-node Elasticsearch (no Docker needed).

    The integ-test distribution is fetched once with Maven and cached outside the
    repository; the node runs on a Java 21+ found on the machine.
    """
    configure_logging("info")


@dev_es.command()
@_node_options
@click.option(
    "--heap",
    default="1g",
    show_default=True,
    callback=lambda _ctx, _param, value: _heap(value),
    help="JVM heap (-Xms/-Xmx).",
)
@click.option(
    "--distribution",
    type=click.Path(exists=True, path_type=Path),
    envvar="APPMIXER_AUDIT_ES_DISTRIBUTION",
    help="An Elasticsearch integ-test zip or unpacked home to use instead of downloading.",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0, 3600, min_open=True),
    help="Seconds to wait for health.",
)
@click.option(
    "--security",
    is_flag=True,
    help="HTTPS, the elastic superuser and API keys; CA and password files: see status.",
)
def start(
    *,
    name: str,
    port: int,
    transport_port: int,
    heap: str,
    distribution: Path | None,
    timeout: float,
    security: bool,
) -> None:
    """Start the node (or reuse it when running); print its URL as the last line.

    With --security the node gets a locally made CA and node certificate, the elastic
    superuser with a random password, and the analysis plugin API keys need (built once
    with Maven); `dev-es status --format json` names the CA and password files.
    """
    from devtools.devnode import DevNodeError

    node = _node(
        name, port, transport_port, heap=heap, distribution=distribution, security=security
    )
    try:
        url = node.start(timeout=timeout)
        _report_features(node)
    except DevNodeError as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(url)


@dev_es.command("build-plugin")
def build_plugin() -> None:
    """Build (once, with Maven) the analysis plugin --security installs; print its zip."""
    from devtools.devnode import DevNodeError, cache_dir, find_java
    from devtools.secure import SecureSetupError
    from devtools.secure import build_plugin as build

    try:
        click.echo(build(cache_dir(), find_java()))
    except (DevNodeError, SecureSetupError) as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_FAILURE)


@dev_es.command()
@_node_options
def stop(name: str, port: int, transport_port: int) -> None:
    """Stop the node this command started (nothing else)."""
    node = _node(name, *_own_ports(name, port, transport_port))
    click.echo("stopped" if node.stop() else "not running")


def _own_ports(name: str, port: int, transport_port: int) -> tuple[int, int]:
    """The ports node ``name`` was started with (its ``elasticsearch.yml``) where the flags
    were not given, so ``status --name N`` and ``stop --name N`` find the node itself."""
    from devtools.devnode import cache_dir

    ctx = click.get_current_context()
    given = {
        param: ctx.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE
        for param in ("port", "transport_port")
    }
    config = cache_dir() / "nodes" / name / "config" / "elasticsearch.yml"
    try:
        lines = config.read_text().splitlines()
    except OSError:
        return port, transport_port
    found: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("http.port", "transport.port") and value.strip().isdigit():
            found[key.strip()] = int(value.strip())
    return (
        port if given["port"] else found.get("http.port", port),
        transport_port if given["transport_port"] else found.get("transport.port", transport_port),
    )


@dev_es.command()
@_node_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status(name: str, port: int, transport_port: int, fmt: str) -> None:
    """Exit 0 when the node is up and healthy; print its URL and optional features."""
    from elasticsearch import ApiError, TransportError

    node = _node(name, *_own_ports(name, port, transport_port))
    state = node.status()
    features = None
    if state.healthy:
        try:
            features = _features(node)
        except (ApiError, TransportError):
            # Healthy a moment ago, gone now (stopping, restarting): say so, no traceback.
            state.healthy = False
    if fmt == "json":
        click.echo(json.dumps({**state.__dict__, "features": features}))
    elif state.healthy:
        click.echo(f"running: {node.url} (pid {state.pid})")
        click.echo(features["summary"] if features else "")
    else:
        click.echo(f"not running: {node.url}" if not state.running else "running, not healthy")
    sys.exit(0 if state.healthy else EXIT_FAILURE)


def _features(node: DevNode) -> dict[str, object]:
    from indexer.capabilities import detect
    from indexer.client import build_client

    credentials = node.credentials()
    if credentials is None:
        client = build_client([node.url])
    else:
        client = build_client(
            [node.url],
            ca_certs=credentials.ca_certs,
            username=credentials.username,
            password=credentials.password(),
        )
    try:
        capabilities = detect(client)
    finally:
        client.close()
    return {**capabilities.as_dict(), "summary": capabilities.summary()}


def _report_features(node: DevNode) -> None:
    from common.log import get_logger

    features = _features(node)
    get_logger("devnode").info("devnode_features", summary=features["summary"])
