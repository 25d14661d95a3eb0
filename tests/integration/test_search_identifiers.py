"""Searching an id finds every event that mentions it, on a real node.

A flow clone names its source flow only inside ``data``, which is stored but not indexed;
``appmixer.related.id`` carries it. The oracle here reads the raw input records (the flow
an event belongs to, and the ``sourceFlowId`` a clone names), not the normalizer's output.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from cli import cli
from tests.integration.conftest import Shipped, input_lines

pytestmark = [pytest.mark.integration, pytest.mark.compat]


def raw_records() -> list[dict[str, Any]]:
    records = []
    for _name, _offset, line in input_lines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record.get("audit", record) if "msg" in record else record)
    return records


def flow_of(record: dict[str, Any]) -> Any:
    flow = record.get("flow")
    return record.get("flowId") or (flow.get("id") if isinstance(flow, dict) else None)


def source_of(record: dict[str, Any]) -> Any:
    data = record.get("data")
    return data.get("sourceFlowId") if isinstance(data, dict) else None


def cloned_source() -> str:
    """A flow that has events of its own and is the source of a clone in another flow."""
    records = raw_records()
    own = {flow_of(record) for record in records}
    for record in records:
        source = source_of(record)
        if source and source in own and flow_of(record) != source:
            return str(source)
    pytest.fail("the input holds no clone of a flow that has events of its own")


def mentioning(shipped: Shipped, flow_id: str) -> tuple[set[str], set[str]]:
    """(ids of the events of that flow, ids of clones of it in other flows), from the input
    as the shipped documents carry it (flow id and the raw data the event stored)."""
    own, clones = set(), set()
    for item in shipped.events:
        appmixer = item.event["appmixer"]
        data = appmixer["audit"].get("data")
        if appmixer.get("flow", {}).get("id") == flow_id:
            own.add(item.event_id)
        elif isinstance(data, dict) and data.get("sourceFlowId") == flow_id:
            clones.add(item.event_id)
    return own, clones


class TestIdentifierSearch:
    def test_cli_query_finds_the_flow_and_its_clones(self, shipped: Shipped) -> None:
        """search --query <flow id>: the flow's own events and the clones that name it."""
        flow_id = cloned_source()
        own, clones = mentioning(shipped, flow_id)
        assert own
        assert clones
        args = ["search", *shipped.cli(), "--query", flow_id, "--all", "--format", "json"]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        found = {json.loads(line)["event"]["id"] for line in result.stdout.splitlines()}
        assert found == own | clones

    def test_kibana_query_bar_finds_the_clone(self, es: Elasticsearch, shipped: Shipped) -> None:
        """The query Kibana's query bar sends for free text (KQL without a field: a lenient
        multi_match over the index's default fields) finds the clone events too."""
        flow_id = cloned_source()
        own, clones = mentioning(shipped, flow_id)
        query = {"multi_match": {"type": "best_fields", "query": flow_id, "lenient": True}}
        response = es.search(index=shipped.settings.events_target, query=query, size=1000)
        found = {hit["_id"] for hit in response.body["hits"]["hits"]}
        assert clones <= found
        assert own <= found
