"""Build the Elasticsearch client from explicit connection parameters: nodes, auth, TLS.

The command line turns the agent's settings into these parameters (``cli.options``),
so the indexer knows nothing of how the agent is configured.

Retries are ours, not the client's: the bulk sink decides per item what to retry, so the
transport is told not to retry on its own (``max_retries=0``) except for plain connection
failover between nodes, which it does by trying the next node of the pool.

Compatibility: requests carry ``compatible-with=<major>`` of the node they go to, learnt
once from the node itself (:mod:`indexer.cluster`), not the client library's own major: an
8.x node refuses the ``compatible-with=9`` the library would send.

Serializers: responses are decoded with orjson (the standard library's decoder was the
largest single cost of handling a bulk answer), and a bulk body the sink has already encoded
as NDJSON bytes is sent as it is, not copied twice into a new buffer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import orjson
from elastic_transport import Transport
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.serializer import (
    CompatibilityModeJsonSerializer,
    CompatibilityModeNdjsonSerializer,
    JsonSerializer,
    NdjsonSerializer,
)

from common.filewatch import ContentWatch
from common.log import get_logger
from indexer.cluster import (
    Cluster,
    check_supported,
    identify,
    mark_request,
)

log = get_logger(__name__)


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


_MIMETYPE = re.compile(r"application/(json|x-ndjson)")


class Compatibility:
    """The major version requests are marked with, shared by a client and its copies.

    Until the node has been asked (:func:`negotiate`), the first request asks it; a node that
    cannot be reached then is asked again on the next request.
    """

    def __init__(self, where: str = "the node") -> None:
        self.cluster: Cluster | None = None
        self.where = where  # the node URLs, without credentials, for a refusal
        self._lock = threading.Lock()

    def learn(self, es: Elasticsearch) -> Cluster:
        """Ask once; no lock is held while asking, so a health probe with a short timeout
        never waits behind a bulk request's long one on a frozen node."""
        cluster = self.cluster
        if cluster is None:
            cluster = identify(es)
            with self._lock:
                if self.cluster is None:
                    self.cluster = cluster
                cluster = self.cluster
        return cluster

    def headers(self, headers: Any) -> Any:
        """``headers`` with JSON and NDJSON media types marked for the node's major."""
        cluster = self.cluster
        if not headers or cluster is None or cluster.product != "Elasticsearch":
            return headers
        marked = f"application/vnd.elasticsearch+\\1; compatible-with={cluster.major}"
        return {
            name: _MIMETYPE.sub(marked, value)
            if name.lower() in ("accept", "content-type") and isinstance(value, str)
            else value
            for name, value in headers.items()
        }


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
) -> RenewableElasticsearch:
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
    client = RenewableElasticsearch(list(urls), **kwargs)  # type: ignore[arg-type]
    client.compatibility = Compatibility(", ".join(_without_userinfo(url) for url in urls))
    return client


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def negotiate(es: Elasticsearch, where: str) -> Cluster:
    """Who the node is, when the agent supports it; requests are then marked for its major.

    Raises :class:`indexer.cluster.UnsupportedCluster` (naming ``where``, e.g. the URL) for
    a cluster the agent does not support, and the client's errors when the node cannot be
    asked.
    """
    if isinstance(es, RenewableElasticsearch) and es._watch is not None:
        es._watch.renew(es)  # the question goes around perform_request: renew here
    compatibility = getattr(es, "compatibility", None)
    learn = compatibility.learn if isinstance(compatibility, Compatibility) else identify
    return check_supported(learn(es), where)


class RenewableElasticsearch(Elasticsearch):
    """A client that picks up a replaced API key, password or CA file while it runs.

    A revoked key or a wrong CA is fixed by replacing a file (a Kubernetes secret update, a
    renewed CA bundle); the agent must then resume on its own, not wait for a restart. Before
    each request the client asks its :class:`CredentialWatch` whether a watched file changed;
    if so it switches to the connection built from the new files. Copies made by
    :meth:`options` share the watch, so every user of the agent's connection moves over.
    """

    _watch: CredentialWatch | None = None
    _generation = 0
    compatibility: Compatibility | None = None

    def perform_request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._watch is not None:
            self._watch.renew(self)
        compatibility = self.compatibility
        if compatibility is not None:
            if compatibility.cluster is None:
                # Learnt here when nothing asked first (`run --no-setup` started while the
                # node was away). Its errors are this request's: unmarked, the request could
                # be refused for its media type (8.x) and taken for a refused document. An
                # unsupported cluster is refused, never written to.
                check_supported(compatibility.learn(self), compatibility.where)
            kwargs["headers"] = compatibility.headers(kwargs.get("headers"))
        try:
            return super().perform_request(method, path, **kwargs)
        except ApiError as exc:
            mark_request(exc, method, path)
            raise

    def options(self, **kwargs: Any) -> Self:
        client = super().options(**kwargs)
        client.compatibility = self.compatibility
        # A copy with credentials of its own is no longer the watched connection.
        if not {"api_key", "basic_auth", "bearer_auth"} & kwargs.keys():
            client._watch, client._generation = self._watch, self._generation
        return client

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        super().close()


class CredentialWatch:
    """Rebuilds the connection when one of ``files`` changes on disk.

    A change is new content at a path (:class:`common.filewatch.ContentWatch`), looked for at
    most once per ``interval`` seconds. A replacement that cannot be used (empty, not a
    certificate) is reported once, and the previous connection is kept until a usable one
    arrives.

    A connection being replaced may still carry a request on another thread, so it is closed
    one renewal later, not at once.
    """

    def __init__(
        self,
        files: Sequence[Path],
        rebuild: Callable[[], Elasticsearch],
        *,
        current: Elasticsearch,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._content = ContentWatch(files, interval=interval, clock=clock)
        self._rebuild = rebuild
        self._lock = threading.Lock()
        self.generation = 0
        self._transport = current.transport
        self._authorization = _authorization(current)
        self._retired: list[Transport] = []

    @property
    def files(self) -> list[Path]:
        return self._content.files

    def renew(self, client: RenewableElasticsearch) -> None:
        """Bring ``client`` onto the newest connection, building one if a file changed."""
        if self._content.due():
            self._look()
        if client._generation != self.generation:
            with self._lock:
                client._transport = self._transport
                if self._authorization is None:
                    client._headers.pop("authorization", None)
                else:
                    client._headers["authorization"] = self._authorization
                client._generation = self.generation

    def close(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for transport in retired:
            transport.close()

    def _look(self) -> None:
        with self._lock:
            changed = [str(path) for path in self._content.changed()]  # [] if another looked
            if not changed:
                return
            try:
                fresh = self._rebuild()
            except (OSError, ValueError) as exc:
                log.error("es_credentials_unusable", files=changed, reason=_reason(exc))
                return
            self._retired.append(self._transport)
            while len(self._retired) > 1:
                self._retired.pop(0).close()
            self._transport = fresh.transport
            self._authorization = _authorization(fresh)
            self.generation += 1
        log.info("es_credentials_reloaded", files=changed)


def watch_credentials(
    client: Elasticsearch, files: Sequence[Path], rebuild: Callable[[], Elasticsearch]
) -> None:
    """Have ``client`` (built by :func:`build_client`) follow changes to ``files``."""
    if isinstance(client, RenewableElasticsearch) and files:
        client._watch = CredentialWatch(files, rebuild, current=client)


def _authorization(client: Elasticsearch) -> str | None:
    value = client._headers.get("authorization")
    return str(value) if value is not None else None


def _reason(exc: BaseException) -> str:
    """Why a rebuild failed, without the content of any secret (messages name files only)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
