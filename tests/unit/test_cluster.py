"""Which clusters the agent talks to, how it marks its requests, and which refusals are final.

Pure parts only; the real servers (8.12, 8.19, 9.x, 7.17, OpenSearch, a server that is not
Elasticsearch) are in tests/system/test_unsupported.py and the compatibility suite.
"""

from __future__ import annotations

from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, AuthenticationException, BadRequestError, NotFoundError

from cli import dev_es
from devtools import devnode
from devtools.devnode import DevNodeError, Flavor
from indexer.client import Compatibility
from indexer.cluster import (
    FLOOR,
    SUPPORTED,
    Cluster,
    SetupRefused,
    UnsupportedCluster,
    check_supported,
    mark_request,
    reason_of,
    refusal,
    request_of,
    version_tuple,
)


def api_error(kind: type[ApiError], status: int, body: Any) -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    return kind(message="refused", meta=meta, body=body)


class TestVersions:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("8.19.8", (8, 19, 8)),
            ("9.5.4-SNAPSHOT", (9, 5, 4)),
            ("8.12", (8, 12, 0)),
            ("", (0, 0, 0)),
        ],
    )
    def test_version_tuple(self, text: str, expected: tuple[int, int, int]) -> None:
        assert version_tuple(text) == expected

    @pytest.mark.parametrize("version", ["8.12.0", "8.12.2", "8.19.8", "9.0.0", "9.5.4"])
    def test_supported_versions_pass(self, version: str) -> None:
        cluster = Cluster("Elasticsearch", version, "zip")
        assert check_supported(cluster, "http://es:9200") is cluster

    @pytest.mark.parametrize("version", ["7.17.29", "8.11.4", "10.0.0", "6.8.0"])
    def test_outside_the_range_is_refused_naming_both(self, version: str) -> None:
        with pytest.raises(UnsupportedCluster) as refused:
            check_supported(Cluster("Elasticsearch", version, "zip"), "http://es:9200")
        assert str(refused.value) == (
            f"http://es:9200 runs Elasticsearch {version}; appmixer-audit supports {SUPPORTED}"
        )

    def test_the_floor_is_the_oldest_tested_release(self) -> None:
        assert FLOOR == (8, 12, 0)
        assert SUPPORTED == "Elasticsearch 8.12 or newer 8.x, and 9.x"

    def test_opensearch_is_not_elasticsearch(self) -> None:
        with pytest.raises(UnsupportedCluster, match=r"is OpenSearch 2\.19\.6, not Elasticsearch;"):
            check_supported(Cluster("OpenSearch", "2.19.6", "zip"), "http://os:9200")

    def test_a_server_that_does_not_identify(self) -> None:
        found = Cluster("a server that does not identify as Elasticsearch (HTTP 404)", "", "")
        with pytest.raises(UnsupportedCluster) as refused:
            check_supported(found, "http://x:80")
        assert str(refused.value).startswith(
            "http://x:80 is a server that does not identify as Elasticsearch (HTTP 404); "
        )

    def test_an_unreadable_version_is_accepted_and_speaks_8(self) -> None:
        """A credential without ``monitor`` cannot read the version: every supported version
        answers compatible-with=8."""
        cluster = Cluster("Elasticsearch", "", "unknown", compat_major=8)
        assert check_supported(cluster, "http://es:9200") is cluster
        assert cluster.major == 8
        assert "monitor" in cluster.describe()


class TestRefusals:
    @pytest.mark.parametrize(("kind", "status"), [(BadRequestError, 400), (NotFoundError, 404)])
    def test_400_and_404_are_final(self, kind: type[ApiError], status: int) -> None:
        error = api_error(kind, status, {"error": {"reason": "no handler found for uri"}})
        mark_request(error, "GET", "/_nodes/_local?filter_path=x")
        refused = refusal(error, credential_renewable=True)
        assert isinstance(refused, SetupRefused)
        assert str(refused) == (
            f"GET /_nodes/_local was refused (HTTP {status}): no handler found for uri"
        )

    def test_401_is_final_only_when_no_file_can_renew_the_credential(self) -> None:
        error = api_error(AuthenticationException, 401, {"error": {"reason": "unable to auth"}})
        assert refusal(error, credential_renewable=True) is None
        assert isinstance(refusal(error, credential_renewable=False), SetupRefused)

    @pytest.mark.parametrize("status", [403, 408, 429, 500, 502, 503])
    def test_others_are_left_to_the_caller(self, status: int) -> None:
        assert refusal(api_error(ApiError, status, {}), credential_renewable=False) is None

    def test_the_innermost_reason_is_named(self) -> None:
        body = {"error": {"reason": "outer", "caused_by": {"reason": "the real one"}}}
        assert reason_of(api_error(BadRequestError, 400, body)) == "the real one"
        assert reason_of(api_error(NotFoundError, 404, "<html>\nNot Found")) == "<html>"

    def test_the_first_request_recorded_wins(self) -> None:
        error = api_error(BadRequestError, 400, {})
        assert request_of(error) == "a request"
        mark_request(error, "PUT", "/_index_template/x")
        mark_request(error, "GET", "/elsewhere")
        assert request_of(error) == "PUT /_index_template/x"


class TestCompatibilityHeaders:
    def headers(self, cluster: Cluster | None, given: Any) -> Any:
        compatibility = Compatibility()
        compatibility.cluster = cluster
        return compatibility.headers(given)

    @pytest.mark.parametrize("major", [8, 9])
    def test_json_and_ndjson_are_marked_with_the_nodes_major(self, major: int) -> None:
        cluster = Cluster("Elasticsearch", f"{major}.1.0", "zip")
        given = {"accept": "application/json", "content-type": "application/x-ndjson", "x": "y"}
        assert self.headers(cluster, given) == {
            "accept": f"application/vnd.elasticsearch+json; compatible-with={major}",
            "content-type": f"application/vnd.elasticsearch+x-ndjson; compatible-with={major}",
            "x": "y",
        }

    def test_unknown_node_leaves_the_headers_alone(self) -> None:
        given = {"accept": "application/json"}
        assert self.headers(None, given) == given
        assert self.headers(None, None) is None

    def test_marked_headers_are_not_marked_twice(self) -> None:
        """The client library's own rewrite only touches ``application/json``: once marked
        for 8, a request stays marked for 8."""
        cluster = Cluster("Elasticsearch", "8.19.8", "zip")
        marked = self.headers(cluster, {"accept": "application/json"})
        assert self.headers(cluster, marked) == marked


class TestDevNodeVersions:
    def test_parse(self) -> None:
        assert Flavor.parse("8.19.8") == Flavor("elasticsearch", "8.19.8")
        assert Flavor.parse("opensearch-2.19.6") == Flavor("opensearch", "2.19.6")
        assert Flavor.parse("opensearch-2.19.6").spec == "opensearch-2.19.6"
        assert Flavor.parse("9.5.4").artifact == (
            "org.elasticsearch.distribution.integ-test-zip:elasticsearch:9.5.4:zip"
        )
        assert Flavor.parse("opensearch-2.19.6").artifact == (
            "org.opensearch.distribution.integ-test-zip:opensearch:2.19.6:zip"
        )

    @pytest.mark.parametrize("text", ["8.19", "latest", "9.x.1", "opensearch-", ""])
    def test_parse_refuses_what_is_not_a_version(self, text: str) -> None:
        with pytest.raises(DevNodeError):
            Flavor.parse(text)

    @pytest.mark.parametrize(
        ("text", "java"),
        [
            ("9.5.4", (21, None)),
            ("8.19.8", (17, None)),
            ("8.12.2", (17, 23)),  # the security manager, gone in Java 24
            ("7.17.29", (11, 23)),
            ("opensearch-2.19.6", (11, 23)),
        ],
    )
    def test_java_range(self, text: str, java: tuple[int, int | None]) -> None:
        assert Flavor.parse(text).java_range == java

    def test_the_cli_default_is_the_dev_nodes(self) -> None:
        assert dev_es.ES_VERSION == devnode.ES_VERSION
