"""Options shared by several commands, and the one way commands build their settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click
from pydantic import SecretStr

from agent.config import Settings, load_settings, secret_from_file
from common.log import configure_logging, get_logger
from common.secrets import without_userinfo

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path),
        help="TOML config file (flags and APPMIXER_AUDIT_* variables override it).",
    )(func)


def format_option(*choices: str, help_text: str) -> Callable[[F], F]:
    """``--format`` with the first choice as default, passed on as ``output_format``."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help_text,
    )


def es_options(func: F) -> F:
    """Connection and target options; each also reads APPMIXER_AUDIT_<NAME>."""
    decorators = [
        click.option("--es-url", help="Elasticsearch URL(s), comma-separated."),
        # Secrets are never flags (process arguments are visible to every local user): they
        # come from APPMIXER_AUDIT_ES_API_KEY / _ES_PASSWORD, the config file, or a file.
        click.option(
            "--es-api-key-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File holding the API key (encoded, as Elasticsearch gives it).",
        ),
        click.option("--es-username", help="Basic-auth user."),
        click.option(
            "--es-password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File holding the basic-auth password.",
        ),
        click.option(
            "--es-ca-certs",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CA bundle for TLS.",
        ),
        click.option(
            "--es-verify-certs/--no-es-verify-certs",
            default=None,
            help="Verify TLS certificates (default: yes).",
        ),
        click.option("--namespace", help="Data stream namespace (default: default)."),
        click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"])),
        config_option,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def build_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Settings from flags, env and file; logging configured to match."""
    settings = load_settings(config_file, **flags)
    configure_logging(settings.log_level)
    return settings


def warn_about_exposure(settings: Settings) -> None:
    """Say so, at every start, when the settings leave credentials or events open to others."""
    log = get_logger(__name__)
    urls = settings.es_url
    if not settings.es_verify_certs and any(url.startswith("https://") for url in urls):
        log.warning(
            "tls_verification_disabled",
            reason="es_verify_certs is false: the node's certificate is not checked, so "
            "anyone on the path can read and alter what is shipped",
        )
    in_urls = any(urlsplit(url).password for url in urls)
    plain = [without_userinfo(url) for url in urls if url.startswith("http://")]
    if plain and (settings.es_api_key is not None or settings.es_password is not None or in_urls):
        log.warning(
            "credentials_over_http",
            urls=plain,
            reason="the API key or password and every audit event cross the network "
            "unencrypted; use https://",
        )
    if in_urls:
        log.warning(
            "credentials_in_url",
            reason="a password inside ES_URL shows wherever the URL does (process list, "
            "environment, config file); give ES_USERNAME and ES_PASSWORD_FILE instead",
        )


def client_for(settings: Settings, *, retries: int = 0) -> Elasticsearch:
    """The Elasticsearch client the settings describe (the indexer never sees ``Settings``).

    The API key, password and CA files are read again whenever one of them changes, so a
    rotated key or a renewed CA reaches a running agent without a restart.
    """
    from agent.preflight import PreflightError, readable_ca
    from indexer.client import build_client, watch_credentials

    warn_about_exposure(settings)

    def build(api_key: str | None, password: str | None) -> Elasticsearch:
        return build_client(
            settings.es_url,
            api_key=api_key,
            username=settings.es_username,
            password=password,
            verify_certs=settings.es_verify_certs,
            ca_certs=settings.es_ca_certs,
            timeout=settings.es_request_timeout,
            retries=retries,
        )

    def rebuild() -> Elasticsearch:
        if settings.es_ca_certs is not None:
            try:
                readable_ca(settings.es_ca_certs)  # a bad bundle would fail only per request
            except PreflightError as exc:
                raise ValueError(str(exc)) from None
        return build(
            _reread(settings.es_api_key_file, "es_api_key", settings.es_api_key),
            _reread(settings.es_password_file, "es_password", settings.es_password),
        )

    client = build(
        settings.es_api_key.get_secret_value() if settings.es_api_key else None,
        settings.es_password.get_secret_value() if settings.es_password else None,
    )
    watched = [settings.es_api_key_file, settings.es_password_file, settings.es_ca_certs]
    watch_credentials(client, [path for path in watched if path is not None], rebuild)
    return client


def _reread(path: Path | None, name: str, current: SecretStr | None) -> str | None:
    """The secret as its file holds it now, or the value given directly."""
    if path is not None:
        return secret_from_file(name, path)
    return current.get_secret_value() if current is not None else None


def identify_cluster(es: Elasticsearch, settings: Settings, *, level: str = "debug") -> Any:
    """Who the node is (:class:`indexer.cluster.Cluster`), logged at ``level``; requests are
    then marked for its version. Raises ``UnsupportedCluster`` for a cluster the agent does
    not support, and the client's errors when the node cannot be asked."""
    from indexer.client import negotiate

    where = without_userinfo(", ".join(settings.es_url))
    cluster = negotiate(es, where)
    logger = get_logger(__name__)
    getattr(logger, level)(
        "elasticsearch_identified",
        product=cluster.product,
        version=cluster.version or None,
        compatible_with=cluster.major,
        url=where,
    )
    if not cluster.version_known:
        logger.warning(
            "elasticsearch_version_unknown",
            reason="this credential may not read the node's version (no monitor privilege); "
            "requests are sent compatible-with=8, which every supported version answers",
        )
    return cluster


@contextmanager
def elasticsearch_client(
    settings: Settings,
    *,
    refused: str = "Elasticsearch refused the request",
    exit_code: int | None = None,
) -> Iterator[Elasticsearch]:
    """A client; an unreachable node or a refused request is one line on stderr and exit 1
    (or ``exit_code``)."""
    from elasticsearch import ApiError, TransportError

    from cli import EXIT_FAILURE, EXIT_USAGE
    from indexer.cluster import UnsupportedCluster
    from indexer.setup import error_reason

    code = EXIT_FAILURE if exit_code is None else exit_code
    client = client_for(settings)
    try:
        try:
            identify_cluster(client, settings)
        except UnsupportedCluster as exc:
            click.echo(f"appmixer-audit: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        yield client
    except ApiError as exc:
        click.echo(f"appmixer-audit: {refused}: {error_reason(exc)}", err=True)
        sys.exit(code)
    except TransportError as exc:
        urls = ", ".join(settings.es_url)
        reason = exc.message if isinstance(exc.message, str) and exc.message else str(exc)
        line = f"appmixer-audit: cannot reach Elasticsearch at {urls}: {reason}"
        click.echo(without_userinfo(line), err=True)
        sys.exit(code)
    finally:
        client.close()
