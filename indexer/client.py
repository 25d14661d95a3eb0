"""Build the Elasticsearch client from settings: nodes, auth, TLS, timeouts.

Retries are ours, not the client's: the bulk sink decides per item what to retry, so the
transport is told not to retry on its own (``max_retries=0``) except for plain connection
failover between nodes, which it does by trying the next node of the pool.
"""

from __future__ import annotations

from elasticsearch import Elasticsearch

from agent.config import Settings


def build_client(
    settings: Settings, *, retries: int = 0, timeout: float | None = None
) -> Elasticsearch:
    kwargs: dict[str, object] = {
        "request_timeout": timeout if timeout is not None else settings.es_request_timeout,
        "max_retries": retries,
        "retry_on_timeout": retries > 0,
        # A dead node is put aside for a while and the next one is used.
        "dead_node_backoff_factor": 1.0,
        "max_dead_node_backoff": 30.0,
    }
    if settings.es_api_key is not None:
        kwargs["api_key"] = settings.es_api_key.get_secret_value()
    elif settings.es_username is not None:
        password = settings.es_password.get_secret_value() if settings.es_password else ""
        kwargs["basic_auth"] = (settings.es_username, password)
    if any(url.startswith("https://") for url in settings.es_url):
        kwargs["verify_certs"] = settings.es_verify_certs
        if settings.es_ca_certs is not None:
            kwargs["ca_certs"] = str(settings.es_ca_certs)
        if not settings.es_verify_certs:
            kwargs["ssl_show_warn"] = False
    return Elasticsearch(settings.es_url, **kwargs)  # type: ignore[arg-type]
