"""``appmixer-audit dev-es``: a local Elasticsearch node for trying the agent out and for tests."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli import EXIT_FAILURE
from common.log import configure_logging

if TYPE_CHECKING:
    from devtools.devnode import DevNode

# The default version, repeated from devtools.devnode so --help needs no import of it; a
# unit test holds the two equal.
ES_VERSION = "9.5.4"

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
    click.option("--port", type=_PORT, help="HTTP port [default: the node's last, else 9200]."),
    click.option(
        "--transport-port",
        type=_PORT,
        help="Transport port [default: the node's last, else 9300].",
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
    port: int | None,
    transport_port: int | None,
    *,
    heap: str = "1g",
    version: str | None = None,
    distribution: Path | None = None,
    security: bool | None = None,
) -> DevNode:
    from devtools.devnode import DevNode, DevNodeError

    try:
        return DevNode(
            name,
            port,
            transport_port,
            heap=heap,
            version=version,
            distribution=distribution,
            security=security,
        )
    except DevNodeError as exc:
        raise click.BadParameter(str(exc)) from None


def _version(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from devtools.devnode import DevNodeError, Flavor

    if value is None:
        return None
    try:
        return Flavor.parse(value).spec
    except DevNodeError as exc:
        raise click.BadParameter(str(exc)) from None


VERSION_HELP = (
    "Elasticsearch version (an integ-test zip on Maven Central, e.g. 8.19.8), or "
    "opensearch-VERSION [default: the node's last, else {default}]."
)


@click.group("dev-es")
def dev_es() -> None:
    """Run a local single-node Elasticsearch (no Docker needed).

    The integ-test distribution is fetched once with Maven and cached outside the
    repository; the node runs on the newest JDK on the machine that its version supports
    (9.x: Java 21+; 8.x: 17+, up to 23 before 8.18).
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
    "--version", "version", callback=_version, help=VERSION_HELP.format(default=ES_VERSION)
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
    port: int | None,
    transport_port: int | None,
    heap: str,
    version: str | None,
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
        name,
        port,
        transport_port,
        heap=heap,
        version=version,
        distribution=distribution,
        security=security,
    )
    try:
        url = node.start(timeout=timeout)
        _report_features(node)
    except DevNodeError as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(url)


@dev_es.command("build-plugin")
@click.option(
    "--version", "version", callback=_version, help=VERSION_HELP.format(default=ES_VERSION)
)
def build_plugin(version: str | None) -> None:
    """Build (once, with Maven) the analysis plugin --security installs; print its zip."""
    from devtools.devnode import DevNodeError, Flavor, cache_dir, ensure_distribution, find_java
    from devtools.secure import SecureSetupError
    from devtools.secure import build_plugin as build

    flavor = Flavor.parse(version or ES_VERSION)
    try:
        click.echo(build(cache_dir(), find_java(flavor), ensure_distribution(flavor)))
    except (DevNodeError, SecureSetupError) as exc:
        click.echo(f"appmixer-audit: {exc}", err=True)
        sys.exit(EXIT_FAILURE)


@dev_es.command()
@_node_options
def stop(name: str, port: int | None, transport_port: int | None) -> None:
    """Stop the node this command started (nothing else)."""
    node = _node(name, port, transport_port)
    click.echo("stopped" if node.stop() else "not running")


@dev_es.command()
@_node_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status(name: str, port: int | None, transport_port: int | None, fmt: str) -> None:
    """Exit 0 when the node is up and healthy; print its URL and optional features."""
    from elasticsearch import ApiError, TransportError

    node = _node(name, port, transport_port)
    state = node.status()
    features = None
    if state.healthy:
        try:
            features = _features(node)
        except (ApiError, TransportError):
            # Healthy a moment ago, gone now (stopping, restarting): say so, no traceback.
            state.healthy = False
    if fmt == "json":
        click.echo(
            json.dumps({**state.__dict__, "version": node.flavor.spec, "features": features})
        )
    elif state.healthy:
        click.echo(f"running: {node.url} (pid {state.pid}, {node.flavor.label})")
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

    if node.flavor.product != "elasticsearch":
        return

    features = _features(node)
    get_logger(__name__).info("devnode_features", summary=features["summary"])
