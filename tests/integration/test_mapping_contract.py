"""The mapping and the writers agree: every field written is mapped, every mapped field is
written, and on a real node nothing is mapped dynamically or ignored for normal documents."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from agent.normalize import Normalized
from chain.link import Head, step, stream_id
from indexer.capabilities import Capabilities, detect
from indexer.fields import TARGETS, Target, composed_mappings, document_paths, mapped_fields, walk
from indexer.setup import SetupReport, substitute_types
from indexer.sink import BulkSink, Delivered, Shipment
from tests.integration.conftest import Shipped, make_settings, normalize_all

pytestmark = [pytest.mark.integration, pytest.mark.compat]

# Written by the bulk sink at send time, not by the normalizer (DESIGN "Output").
SINK_WRITTEN: dict[Target, set[str]] = {"events": {"event.ingested"}, "changes": {"event.ingested"}}


@pytest.fixture(scope="module")
def emitted() -> dict[Target, set[str]]:
    """The fields the agent writes before the sink: the normalizer's over the sample,
    simulated and extra lines, then the chain step's (appmixer.chain, after the first)."""
    found: dict[Target, set[str]] = {"events": set(), "changes": set()}
    head = Head.genesis(stream_id("test-host", "contract"))
    for item in normalize_all("contract"):
        head = step(head, item.event_id, item.event)
        found["events"] |= document_paths(item.event, "events")
        for _id, change in item.changes:
            found["changes"] |= document_paths(change, "changes")
    return found


def node_targets(shipped: Shipped) -> dict[Target, str]:
    return {"events": shipped.settings.events_target, "changes": shipped.settings.changes_target}


class TestContract:
    @pytest.mark.parametrize("target", TARGETS)
    def test_every_emitted_field_is_mapped(
        self, emitted: dict[Target, set[str]], target: Target
    ) -> None:
        """No field the normalizer writes is left to dynamic: false (stored but unsearchable)."""
        assert emitted[target] - set(mapped_fields(target)) == set()

    @pytest.mark.parametrize("target", TARGETS)
    def test_every_mapped_field_is_written(
        self, emitted: dict[Target, set[str]], target: Target
    ) -> None:
        """No field is mapped that neither the normalizer nor the sink writes."""
        unwritten = set(mapped_fields(target)) - emitted[target] - SINK_WRITTEN[target]
        assert unwritten == set()
        assert SINK_WRITTEN[target] <= set(mapped_fields(target))

    def test_sink_writes_what_it_is_credited_with(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport
    ) -> None:
        """The bulk sink stamps event.ingested on the documents of both targets."""
        settings = make_settings(es_url, namespace)
        item = next(i for i in normalize_all(namespace) if i.changes)
        sink = BulkSink(es, settings.events_target, settings.changes_target)
        results = sink.ship([Shipment.of(0, item.event_id, item.event, item.changes)])
        assert isinstance(results[0].outcome, Delivered)
        es.indices.refresh(index=[settings.events_target, settings.changes_target])
        names: dict[Target, str] = {
            "events": settings.events_target,
            "changes": settings.changes_target,
        }
        for target, index in names.items():
            hits = es.search(index=index, size=100).body["hits"]["hits"]
            assert hits
            for hit in hits:
                paths = document_paths(hit["_source"], target)
                assert SINK_WRITTEN[target] <= paths, (target, hit["_source"])


class TestOnTheNode:
    @pytest.mark.parametrize("target", TARGETS)
    def test_node_mapping_is_the_managed_one(
        self, es: Elasticsearch, shipped: Shipped, target: Target
    ) -> None:
        """After real documents, the node maps exactly the managed fields, with the types
        setup rendered for it: nothing was added dynamically."""
        caps: Capabilities = detect(es)
        rendered = substitute_types(composed_mappings(target)["properties"], set(caps.field_types))
        want = {f.name: (f.type, f.subfields) for f in walk(rendered)}
        for index, body in es.indices.get_mapping(index=node_targets(shipped)[target]).items():
            got = {f.name: (f.type, f.subfields) for f in walk(body["mappings"]["properties"])}
            assert got == want, index
            assert body["mappings"]["dynamic"] in {False, "false"}

    @pytest.mark.parametrize("target", TARGETS)
    def test_nothing_ignored_in_normal_documents(
        self, es: Elasticsearch, shipped: Shipped, target: Target
    ) -> None:
        """No value of a normal document was dropped from the index (_ignored is empty)."""
        response = es.search(
            index=node_targets(shipped)[target],
            query={"exists": {"field": "_ignored"}},
            size=5,
            source=False,
            docvalue_fields=["_ignored"],
            track_total_hits=True,
        ).body
        assert response["hits"]["total"]["value"] == 0, response["hits"]["hits"]
        everything = es.count(index=node_targets(shipped)[target]).body["count"]
        written = len(shipped.events) if target == "events" else sum_changes(shipped.events)
        assert everything == written

    def test_unexpected_field_costs_nothing(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport
    ) -> None:
        """A document with an unknown field and malformed ip and date values is still
        indexed whole: the extras are stored, not mapped, and the bad values only ignored."""
        settings = make_settings(es_url, namespace)
        item = normalize_all(namespace)[0]
        document = dict(item.event)
        document["surprise"] = {"deep": {"field": 1}}
        document["source"] = {"ip": "not an ip"}
        document["event"] = {**document["event"], "ingested": "yesterday-ish"}
        es.index(
            index=settings.events_target,
            id=item.event_id,
            op_type="create",
            document=document,
            refresh="wait_for",
        )
        stored = es.search(
            index=settings.events_target, query={"ids": {"values": [item.event_id]}}
        ).body["hits"]["hits"][0]
        assert stored["_source"] == document
        assert sorted(stored["_ignored"]) == ["event.ingested", "source.ip"]
        mapping = next(iter(es.indices.get_mapping(index=settings.events_target).values()))
        assert "surprise" not in mapping["mappings"]["properties"]


def sum_changes(events: list[Normalized]) -> int:
    return sum(len(item.changes) for item in events)
