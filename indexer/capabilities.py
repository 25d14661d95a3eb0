"""What the cluster can do: the integ-test distribution lacks several x-pack features.

Setup, the sink and ``dev-es status`` ask here instead of assuming. Each probe is one cheap
request whose failure means "absent", never an error for the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

_OPTIONAL_FIELD_TYPES = ("match_only_text", "wildcard", "constant_keyword")


@dataclass(frozen=True)
class Capabilities:
    version: str
    distribution: str
    data_streams: bool  # composable templates with data_stream: {} (created on first write)
    data_stream_api: bool  # the _data_stream REST API (x-pack data-streams module)
    lifecycle: bool  # index lifecycle management (_ilm)
    security: bool  # x-pack security enabled (authentication answers)
    field_types: tuple[str, ...]  # optional mapper types present

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        def yes(flag: bool) -> str:
            return "yes" if flag else "no"

        types = ", ".join(self.field_types) or "none"
        return (
            f"Elasticsearch {self.version} ({self.distribution}); data streams: "
            f"{yes(self.data_streams)} (API: {yes(self.data_stream_api)}); lifecycle (ILM): "
            f"{yes(self.lifecycle)}; security: {yes(self.security)}; optional field types: {types}"
        )


def _answers(es: Elasticsearch, method: str, path: str) -> bool:
    try:
        es.perform_request(method, path, headers={"accept": "application/json"})
    except (ApiError, TransportError):
        return False
    return True


def _has_field_type(es: Elasticsearch, field_type: str) -> bool:
    body = {
        "index_patterns": ["appmixer-audit-probe-*"],
        "template": {"mappings": {"properties": {"probe": {"type": field_type}}}},
    }
    try:
        es.perform_request(
            "POST",
            "/_index_template/_simulate",
            body=body,
            headers={"accept": "application/json", "content-type": "application/json"},
        )
    except (ApiError, TransportError):
        return False
    return True


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(
        int(part) for part in version.split("-", maxsplit=1)[0].split(".")[:3] if part.isdigit()
    )


def node_version(es: Elasticsearch) -> tuple[str, str]:
    """Version and build type; ``GET /`` is absent from the integ-test distribution."""
    response = es.nodes.info(node_id="_local", filter_path="nodes.*.version,nodes.*.build_type")
    node = next(iter(response["nodes"].values()))
    return str(node["version"]), str(node.get("build_type", "unknown"))


def _learnt_version(es: Elasticsearch) -> tuple[str, str] | None:
    """Version and build type as the client learnt them from the same node info request
    (:class:`indexer.client.Compatibility`), when it did and the version was readable."""
    cluster = getattr(getattr(es, "compatibility", None), "cluster", None)
    version = getattr(cluster, "version", "")
    if not isinstance(version, str) or not version:
        return None
    return version, str(getattr(cluster, "build_type", "unknown"))


def detect(es: Elasticsearch) -> Capabilities:
    version, build_type = _learnt_version(es) or node_version(es)
    return Capabilities(
        version=version,
        distribution=build_type,
        data_streams=_version_tuple(version) >= (7, 9),
        data_stream_api=_answers(es, "GET", "/_data_stream"),
        lifecycle=_answers(es, "GET", "/_ilm/status"),
        security=_answers(es, "GET", "/_security/_authenticate"),
        field_types=tuple(t for t in _OPTIONAL_FIELD_TYPES if _has_field_type(es, t)),
    )
