"""Which cluster answers, and whether the agent may talk to it.

The Python client of Elasticsearch 9 marks every request ``compatible-with=9``; a 9.x node
answers it, an 8.x node refuses it (``Accept version must be either version 8 or 7``). So
before anything else the agent asks the node who it is, with a plain ``application/json``
request that every version understands, and from then on marks its requests with the node's
own major version (:class:`indexer.client.RenewableElasticsearch` does the marking).

Supported: Elasticsearch from :data:`FLOOR` through the newest 9.x. Anything else (an older
Elasticsearch, OpenSearch, a server that does not say it is Elasticsearch) is refused with
one line naming what was found and what is supported: the agent would otherwise write into
a cluster whose mappings, data streams or privileges it was never tested against.

``GET /`` is not in every distribution (the integ-test zip lacks it), so the version comes
from the local node's info; the product from the ``X-Elastic-Product`` header every
Elasticsearch since 7.14 sends, and, where it is missing, from what ``GET /`` says of itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, Elasticsearch
from elasticsearch.exceptions import HTTP_EXCEPTIONS

FLOOR = (8, 12, 0)
NEWEST_MAJOR = 9
SUPPORTED = f"Elasticsearch {'.'.join(map(str, FLOOR[:2]))} or newer 8.x, and 9.x"

_NODE_INFO_PATH = "/_nodes/_local"
_NODE_INFO = _NODE_INFO_PATH + "?filter_path=nodes.*.version,nodes.*.build_type"
_PLAIN = {"accept": "application/json"}
_VND = "application/vnd.elasticsearch+json"
_WHO_AM_I = "/_security/_authenticate"
# Answers that say nothing of what the server is: a credential refused (by the node or a
# proxy in front of it), or the server busy or away. They are raised for the caller to
# handle (report, retry), never taken as "not Elasticsearch".
_NOT_ABOUT_THE_PRODUCT = frozenset({401, 403, 408, 429, 500, 502, 503, 504})


class ClusterRefusal(Exception):
    """The node said no for good: retrying cannot help, and the agent ends (one line)."""


class UnsupportedCluster(ClusterRefusal):
    """The server is not an Elasticsearch this agent supports; the message says what it is."""


class SetupRefused(ClusterRefusal):
    """A set-up or start-up request was refused for a reason no retry changes."""


# 400: the request is wrong for this node; 404: the URL does not lead to Elasticsearch's API
# (a proxy path, a wrong port). 401 is permanent only when the credential cannot change
# under the running process (see :func:`refusal`).
PERMANENT_STATUSES = frozenset({400, 404})


def refusal(exc: ApiError, *, credential_renewable: bool) -> SetupRefused | None:
    """The refusal ``exc`` amounts to at start-up, or None when retrying may help.

    A refused credential (401) that comes from a file the agent follows is not permanent:
    writing a valid key there is the documented fix, and the running agent picks it up.
    """
    status = exc.status_code
    if status in PERMANENT_STATUSES or (status == 401 and not credential_renewable):
        return SetupRefused(f"{request_of(exc)} was refused (HTTP {status}): {reason_of(exc)}")
    return None


def request_of(exc: BaseException) -> str:
    """``METHOD /path`` of the request that failed, when the client recorded it."""
    return str(getattr(exc, "request", None) or "a request")


def mark_request(exc: BaseException, method: str, path: str) -> None:
    """Record on ``exc`` which request failed, so one line can name it."""
    if getattr(exc, "request", None) is None:
        exc.request = f"{method} {path.split('?', 1)[0]}"  # type: ignore[attr-defined]


def reason_of(exc: ApiError) -> str:
    """The innermost reason Elasticsearch gave: the one that names the actual problem."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    while isinstance(error, dict) and isinstance(error.get("caused_by"), dict):
        error = error["caused_by"]
    if isinstance(error, dict) and error.get("reason"):
        return str(error["reason"])
    if error:
        return str(error)
    text = str(exc.body).strip() if exc.body else ""
    return text.splitlines()[0][:200] if text else str(exc.message)


@dataclass(frozen=True)
class Cluster:
    """What the node said of itself."""

    product: str
    version: str  # "" when the credential may not read it
    build_type: str
    compat_major: int | None = None  # set when the version is not known

    @property
    def release(self) -> tuple[int, int, int]:
        return version_tuple(self.version)

    @property
    def major(self) -> int:
        """The major version requests are marked with."""
        return self.compat_major or self.release[0]

    @property
    def version_known(self) -> bool:
        return bool(self.version)

    def describe(self) -> str:
        if self.product == "Elasticsearch" and not self.version_known:
            return "Elasticsearch (version not readable without the monitor privilege)"
        return f"{self.product} {self.version}".rstrip()


def version_tuple(version: str) -> tuple[int, int, int]:
    """``8.19.8`` -> (8, 19, 8); suffixes (``-SNAPSHOT``) and missing parts count as 0."""
    parts = [*version.split("-", maxsplit=1)[0].split(".")[:3], "0", "0", "0"]
    major, minor, patch = (int(part) if part.isdigit() else 0 for part in parts[:3])
    return major, minor, patch


def check_supported(cluster: Cluster, where: str) -> Cluster:
    """``cluster`` when the agent supports it; else :class:`UnsupportedCluster`."""
    if cluster.product != "Elasticsearch":
        found = cluster.describe()
        if not found.startswith("a server"):
            found += ", not Elasticsearch"
        raise UnsupportedCluster(f"{where} is {found}; appmixer-audit supports {SUPPORTED}")
    if cluster.version_known and (cluster.release < FLOOR or cluster.major > NEWEST_MAJOR):
        raise UnsupportedCluster(
            f"{where} runs {cluster.describe()}; appmixer-audit supports {SUPPORTED}"
        )
    return cluster


def identify(es: Elasticsearch) -> Cluster:
    """Ask the node who it is, in a form every version answers.

    Connection errors propagate as the client raises them (the caller decides whether to
    retry); an HTTP error answer is raised as the client's own :class:`ApiError` subclass.
    A server that answers but is not Elasticsearch is returned as what it says it is.
    """
    meta, body = es.transport.perform_request(
        "GET", _NODE_INFO, headers=_headers(es), request_timeout=_timeout(es)
    )
    product = meta.headers.get("x-elastic-product")
    if product is None and meta.status not in _NOT_ABOUT_THE_PRODUCT:
        return _foreign(es, body if meta.status < 300 else None, meta.status)
    if meta.status == 403:  # 8.x sends no X-Elastic-Product with a security refusal
        return _without_monitor(es)
    _raise_for_status(meta, body, _NODE_INFO_PATH)
    nodes = body.get("nodes") if isinstance(body, dict) else None
    node: Any = next(iter(nodes.values()), None) if isinstance(nodes, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get("version"), str):
        raise UnsupportedCluster(
            "the node's info names no version, so the agent cannot tell which Elasticsearch "
            f"it is; appmixer-audit supports {SUPPORTED}"
        )
    return Cluster(str(product), node["version"], str(node.get("build_type", "unknown")))


def _without_monitor(es: Elasticsearch) -> Cluster:
    """A credential without the ``monitor`` privilege may not read the node's version.

    Every supported version answers ``compatible-with=8`` (9.x through its REST API
    compatibility), so the agent speaks that; the floor cannot be checked, which the
    caller says in a warning. Minted keys of this project's roles carry ``monitor``.
    """
    headers = {**es._headers, "accept": f"{_VND}; compatible-with=8"}
    meta, body = es.transport.perform_request(
        "GET", _WHO_AM_I, headers=headers, request_timeout=_timeout(es)
    )
    _raise_for_status(meta, body, _WHO_AM_I)
    if meta.headers.get("x-elastic-product") != "Elasticsearch":
        return _foreign(es, None, meta.status)
    return Cluster("Elasticsearch", "", "unknown", compat_major=8)


def _foreign(es: Elasticsearch, node_info: Any, status: int) -> Cluster:
    """No ``X-Elastic-Product``: name the product from ``GET /`` when it says."""
    try:
        meta, root = es.transport.perform_request(
            "GET", "/", headers=_headers(es), request_timeout=_timeout(es)
        )
        _raise_for_status(meta, root, "/")
    except Exception:  # any answer but a description: the product is unknown
        root = None
    version = root.get("version") if isinstance(root, dict) else None
    if isinstance(version, dict) and isinstance(version.get("number"), str):
        distribution = str(version.get("distribution") or "")
        product = "OpenSearch" if distribution == "opensearch" else distribution or "a server"
        if product == "a server" and "opensearch" in str(root.get("tagline", "")).lower():
            product = "OpenSearch"
        return Cluster(product, version["number"], str(version.get("build_type", "unknown")))
    if isinstance(node_info, dict) and node_info.get("nodes"):
        node = next(iter(node_info["nodes"].values()))
        if isinstance(node, dict) and isinstance(node.get("version"), str):
            # Elasticsearch before 7.14 did not send the header either; without it, a node
            # that gives only a version is not known to be Elasticsearch.
            return Cluster("a server without X-Elastic-Product", node["version"], "unknown")
    answer = f"answered HTTP {status} to {_NODE_INFO_PATH}"
    return Cluster(f"a server that does not identify as Elasticsearch ({answer})", "", "unknown")


def _timeout(es: Elasticsearch) -> Any:
    """The client's own request timeout (a probe's copy has a short one): the question is
    asked through the transport, which would otherwise use its default."""
    return es._request_timeout


def _headers(es: Elasticsearch) -> dict[str, str]:
    """The client's own headers (authorization) with a media type every version accepts.

    Requests go through the transport itself: no compatibility header, no product check.
    """
    return {**es._headers, **_PLAIN}


def _raise_for_status(meta: Any, body: Any, path: str) -> None:
    if not 200 <= meta.status < 300:
        message = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(message, dict):
            message = message.get("type", message)
        error = HTTP_EXCEPTIONS.get(meta.status, ApiError)(
            message=str(message), meta=meta, body=body
        )
        error.request = f"GET {path}"  # type: ignore[attr-defined]
        raise error
