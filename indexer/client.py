"""Build the Elasticsearch client from explicit connection parameters: nodes, auth, TLS.

The command line turns the agent's settings into these parameters (``agent.cli.options``),
so the indexer knows nothing of how the agent is configured.

Retries are ours, not the client's: the bulk sink decides per item what to retry, so the
transport is told not to retry on its own (``max_retries=0``) except for plain connection
failover between nodes, which it does by trying the next node of the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from elasticsearch import Elasticsearch


def build_client(
    urls: Sequence[str],
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    verify_certs: bool = True,
    ca_certs: Path | None = None,
    timeout: float = 30.0,
    retries: int = 0,
) -> Elasticsearch:
    """A client for ``urls``; an API key wins over a username and password."""
    kwargs: dict[str, object] = {
        "request_timeout": timeout,
        "max_retries": retries,
        "retry_on_timeout": retries > 0,
        # A dead node is put aside for a while and the next one is used.
        "dead_node_backoff_factor": 1.0,
        "max_dead_node_backoff": 30.0,
    }
    if api_key is not None:
        kwargs["api_key"] = api_key
    elif username is not None:
        kwargs["basic_auth"] = (username, password or "")
    if any(url.startswith("https://") for url in urls):
        kwargs["verify_certs"] = verify_certs
        if ca_certs is not None:
            kwargs["ca_certs"] = str(ca_certs)
        if not verify_certs:
            kwargs["ssl_show_warn"] = False
    return Elasticsearch(list(urls), **kwargs)  # type: ignore[arg-type]
