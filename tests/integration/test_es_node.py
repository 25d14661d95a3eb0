"""The suite really talks to Elasticsearch: index, search back, and fixture precedence."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from indexer.client import build_client
from tests.esnode import provide_es_url, url_from_env

pytestmark = [pytest.mark.integration, pytest.mark.compat]


class TestRealNode:
    def test_index_and_search_back(self, es: Elasticsearch, namespace: str) -> None:
        """A document indexed into the node is found again by a full-text search."""
        # A name outside the product's templates, so only this test's mapping applies.
        index = f"appmixer-audit-probe-{namespace}"
        es.indices.create(index=index, mappings={"properties": {"message": {"type": "text"}}})
        try:
            es.index(index=index, id="e1", document={"message": "Flow Updated by maria"})
            es.indices.refresh(index=index)
            found = es.search(index=index, query={"match": {"message": "updated"}})
        finally:
            es.indices.delete(index=index)
        assert found["hits"]["total"]["value"] == 1
        assert found["hits"]["hits"][0]["_id"] == "e1"
        assert found["hits"]["hits"][0]["_source"]["message"] == "Flow Updated by maria"

    def test_cluster_answers_health(self, es: Elasticsearch) -> None:
        """The node the fixture provides reports a usable cluster state."""
        health = es.cluster.health()
        assert health["status"] in {"green", "yellow"}
        assert health["number_of_nodes"] >= 1


class TestFixturePrecedence:
    def test_prefers_es_url_from_environment(self, es_url: str) -> None:
        """When ES_URL is set, that node is used and nothing is started or containerised."""

        def must_not_run() -> bool:
            raise AssertionError("no node may be provisioned when ES_URL is given")

        with provide_es_url(
            {"ES_URL": es_url + "/"}, docker=must_not_run, dev_node=must_not_run
        ) as url:
            assert url == es_url
        client = build_client([url])
        assert client.cluster.health()["number_of_nodes"] >= 1

    def test_namespaced_variable_wins_over_es_url(self) -> None:
        """APPMIXER_AUDIT_ES_URL takes precedence over ES_URL, first of a list."""
        env = {"APPMIXER_AUDIT_ES_URL": "http://a:9200,http://b:9200", "ES_URL": "http://c:9200"}
        assert url_from_env(env) == "http://a:9200"
        assert url_from_env({}) is None

    def test_dev_node_used_without_env_or_docker(self) -> None:
        """Without ES_URL and without a Docker engine, the dev node is the source."""
        used: list[str] = []

        from contextlib import contextmanager

        @contextmanager
        def recording_dev_node():  # type: ignore[no-untyped-def]
            used.append("dev")
            yield "http://127.0.0.1:1"

        with provide_es_url({}, docker=lambda: False, dev_node=recording_dev_node) as url:
            assert url == "http://127.0.0.1:1"
        assert used == ["dev"]
