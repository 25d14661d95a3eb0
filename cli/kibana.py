"""``setup --kibana-url``: the dashboards import, from settings to printed report.

Kibana's credentials are ``KIBANA_API_KEY``, or ``KIBANA_USERNAME`` and
``KIBANA_PASSWORD``; without either, the Elasticsearch ones are used (Kibana authenticates
against the same cluster). TLS to Kibana trusts the same CA bundle as Elasticsearch.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import Settings
from indexer.kibana import Auth, ImportReport, Kibana, KibanaError, import_dashboards


@dataclass(frozen=True)
class KibanaResult:
    """The import report, or the one line saying why there is none."""

    report: ImportReport | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    def failure(self) -> str:
        """The one line for stderr when the import failed (empty when it did not)."""
        if self.report is None:
            return self.error
        return self.report.summary()


def kibana_auth(settings: Settings) -> Auth:
    def secret(value: object) -> str | None:
        return None if value is None else str(getattr(value, "get_secret_value")())  # noqa: B009

    if settings.kibana_api_key is not None or settings.kibana_username is not None:
        return Auth(
            api_key=secret(settings.kibana_api_key),
            username=settings.kibana_username,
            password=secret(settings.kibana_password),
        )
    return Auth(
        api_key=secret(settings.es_api_key),
        username=settings.es_username,
        password=secret(settings.es_password),
    )


def import_into_kibana(settings: Settings, *, wait: float) -> KibanaResult:
    """Import the bundled dashboards into ``settings.kibana_url``; never raises for Kibana's
    answers: a refusal or an unreachable Kibana becomes the result's one-line error."""
    if settings.kibana_url is None:
        raise ValueError("no Kibana URL in the settings")
    kibana = Kibana(
        settings.kibana_url,
        auth=kibana_auth(settings),
        ca_certs=settings.es_ca_certs,
        verify_certs=settings.es_verify_certs,
        timeout=settings.es_request_timeout,
    )
    try:
        return KibanaResult(import_dashboards(kibana, space=settings.kibana_space, wait=wait))
    except KibanaError as exc:
        return KibanaResult(None, str(exc))
    finally:
        kibana.close()
