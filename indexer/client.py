"""Build the Elasticsearch client from explicit connection parameters: nodes, auth, TLS.

The command line turns the agent's settings into these parameters (``agent.cli.options``),
so the indexer knows nothing of how the agent is configured.

Retries are ours, not the client's: the bulk sink decides per item what to retry, so the
transport is told not to retry on its own (``max_retries=0``) except for plain connection
failover between nodes, which it does by trying the next node of the pool.

Serializers: responses are decoded with orjson (the standard library's decoder was the
largest single cost of handling a bulk answer), and a bulk body the sink has already encoded
as NDJSON bytes is sent as it is, not copied twice into a new buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import Elasticsearch
from elasticsearch.serializer import (
    CompatibilityModeJsonSerializer,
    CompatibilityModeNdjsonSerializer,
    JsonSerializer,
    NdjsonSerializer,
)


class _FastJson(JsonSerializer):
    """Decodes with orjson; encoding stays the client's (it knows more types)."""

    def loads(self, data: bytes) -> Any:
        return orjson.loads(data)


class _FastCompatJson(CompatibilityModeJsonSerializer):
    def loads(self, data: bytes) -> Any:
        return orjson.loads(data)


def _pass_through(data: Any) -> bytes | None:
    """Encoded NDJSON bytes ending in a newline need no copy; anything else does."""
    if type(data) is bytes and data.endswith(b"\n"):
        return data
    return None


class _FastNdjson(NdjsonSerializer):
    def dumps(self, data: Any) -> bytes:
        return _pass_through(data) or super().dumps(data)


class _FastCompatNdjson(CompatibilityModeNdjsonSerializer):
    def dumps(self, data: Any) -> bytes:
        return _pass_through(data) or super().dumps(data)


SERIALIZERS = {
    serializer.mimetype: serializer
    for serializer in (_FastJson(), _FastCompatJson(), _FastNdjson(), _FastCompatNdjson())
}


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
        "serializers": SERIALIZERS,
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
