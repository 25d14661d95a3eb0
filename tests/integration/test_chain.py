"""verify on a real node: chained events shipped by the bulk sink, a signed checkpoint stored,
then the index tampered with directly through the Elasticsearch API."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from agent.evidence.chains import Chains, Signer
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source
from chain.checkpoint import ChainKey
from chain.link import Head
from cli import cli
from indexer.chain_index import verify, write_checkpoint
from indexer.setup import SetupReport
from indexer.sink import BulkSink, Delivered, Shipment
from tests.integration.conftest import input_lines, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.compat]

KEY_BYTES = b"0123456789abcdef0123456789abcdef-test"


def ship_chained(
    es: Elasticsearch, es_url: str, namespace: str, state: Path, parts: int = 1
) -> dict[str, Any]:
    """Normalize, chain per file and ship with the agent's sink in ``parts`` rounds, signing
    the heads after each (round ``i`` signed on 2026-01-0``i+1``); the ids shipped."""
    settings = make_settings(es_url, namespace)
    normalizer = Normalizer(NormalizeOptions(namespace=namespace, host_name="test-host"))
    chains = Chains("test-host", lambda *_: None)
    sink = BulkSink(es, settings.events_target, settings.changes_target)
    days = iter(range(1, parts + 1))
    signer = Signer(
        ChainKey(KEY_BYTES), "test-host", state,
        lambda checkpoint: write_checkpoint(es, settings.checkpoints_target, checkpoint),
        now=lambda: datetime(2026, 1, next(days), tzinfo=UTC),
    )  # fmt: skip
    lines = input_lines()
    size = -(-len(lines) // parts)
    heads: dict[str, Head] = {}
    ids: list[str] = []
    for start in range(0, len(lines), size):
        shipments = []
        for name, offset, line in lines[start : start + size]:
            data = line.rstrip(b"\n")
            outcome = normalizer(data, Source(f"/logs/{name}", name, offset, "test-host"))
            event = (outcome.event_id, outcome.event) if isinstance(outcome, Normalized) else None
            heads[name] = chains.advance(name, name, offset, offset + len(line), event).head
            if isinstance(outcome, Normalized):
                shipments.append(
                    Shipment.of(name, outcome.event_id, outcome.event, outcome.changes)
                )
        results = sink.ship(shipments)
        refused = [r.outcome for r in results if not isinstance(r.outcome, Delivered)]
        assert refused == [], refused[:3]
        assert signer.checkpoint([(head, None) for head in heads.values()], []) == []
        ids.extend(shipment.event_id for shipment in shipments)
    return {"settings": settings, "ids": ids}


def run_verify(es_url: str, namespace: str, key_file: Path) -> tuple[int, str]:
    args = ["verify", "--es-url", es_url, "--namespace", namespace, "--key-file", str(key_file)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "chain.key"
    path.write_bytes(KEY_BYTES + b"\n")
    return path


@pytest.fixture
def chained(
    es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport, tmp_path: Path
) -> dict[str, Any]:
    return ship_chained(es, es_url, namespace, tmp_path)


class TestVerifyOnTheNode:
    def test_intact_then_three_tamperings_named(
        self, es: Elasticsearch, es_url: str, chained: dict[str, Any], key_file: Path
    ) -> None:
        """Shipped and signed: intact, exit 0. Then one deleted, one edited and one forged
        directly in Elasticsearch: verify names exactly those three, exit 1."""
        settings, ids = chained["settings"], chained["ids"]
        namespace = settings.namespace
        target = settings.events_target
        code, output = run_verify(es_url, namespace, key_file)
        assert code == 0, output
        assert f"{target}: intact; 3 streams, {len(ids)} events verified, 0 newer" in output

        deleted, edited, model = ids[10], ids[200], ids[300]
        found = es.search(
            index=target,
            query={"ids": {"values": [deleted, edited, model]}},
            seq_no_primary_term=True,
        )
        by_id = {hit["_id"]: hit for hit in found.body["hits"]["hits"]}
        es.delete(index=by_id[deleted]["_index"], id=deleted, refresh=True)
        changed = copy.deepcopy(by_id[edited]["_source"])
        changed["user"] = {"email": "nobody@acme.example"}
        es.index(
            index=by_id[edited]["_index"],
            id=edited,
            document=changed,
            if_seq_no=by_id[edited]["_seq_no"],
            if_primary_term=by_id[edited]["_primary_term"],
            refresh=True,
        )
        forged = copy.deepcopy(by_id[model]["_source"])
        forged["event"]["id"] = "forged-1"
        forged["message"] = "User Deleted"
        es.create(index=target, id="forged-1", document=forged, refresh=True)

        report = verify(es, target, settings.checkpoints_target, [ChainKey(KEY_BYTES)])
        named = sorted((f.kind, f.event_id) for f in report.all_findings)
        assert named == [("altered", edited), ("inserted", "forged-1"), ("missing", deleted)]
        code, output = run_verify(es_url, namespace, key_file)
        assert code == 1
        for event_id in (deleted, edited, "forged-1"):
            assert event_id in output
        assert "NOT intact: 1 altered, 1 inserted, 1 missing" in output

    def test_wrong_key_trusts_no_checkpoint(
        self, es: Elasticsearch, chained: dict[str, Any]
    ) -> None:
        """Under another key the checkpoints are counted as unverifiable and the events as
        unsigned: without the key nothing is vouched for beyond the links themselves."""
        settings = chained["settings"]
        report = verify(es, settings.events_target, settings.checkpoints_target,
                        [ChainKey(b"x" * 32)])  # fmt: skip
        assert report.intact
        assert report.checkpoints_unverifiable == 1
        assert report.as_dict()["events_unsigned"] == len(chained["ids"])

    def test_since_reads_from_the_signed_head_on(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport,
        tmp_path: Path,
    ) -> None:  # fmt: skip
        """--since: an edit before the anchor checkpoint is out of scope, the events after it
        are read by stream and position from the node and verified; without it, it is found."""
        shipped = ship_chained(es, es_url, namespace, tmp_path, parts=2)
        settings, ids = shipped["settings"], shipped["ids"]
        target = settings.events_target
        early = ids[5]
        es.indices.refresh(index=target)
        found = es.search(
            index=target, query={"ids": {"values": [early]}}, seq_no_primary_term=True
        )
        (hit,) = found.body["hits"]["hits"]
        changed = copy.deepcopy(hit["_source"])
        changed["message"] = "Nothing to see"
        es.index(index=hit["_index"], id=early, document=changed, refresh=True,
                 if_seq_no=hit["_seq_no"], if_primary_term=hit["_primary_term"])  # fmt: skip
        keys = [ChainKey(KEY_BYTES)]
        since = datetime(2026, 1, 1, 12, tzinfo=UTC)
        later = verify(es, target, settings.checkpoints_target, keys, since=since)
        assert later.intact
        assert 0 < later.as_dict()["events_intact"] < len(ids)
        whole = verify(es, target, settings.checkpoints_target, keys)
        assert [(f.kind, f.event_id) for f in whole.all_findings] == [("altered", early)]
