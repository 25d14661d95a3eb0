"""verify against the attacks and mistakes of issue 19, each on a real node.

The attacker holds the writer API key (create-only) but not the HMAC key: those rows run on
the plain node and on the secured one, where the events are shipped and the forgeries made
with a writer key, and verify reads with a reader key. Deletions and edits need more than
the writer key: there the index admin does them, as the threat model allows.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from agent.evidence.chains import LOCAL_NAME, read_local_checkpoints
from chain.link import Head, content_digest, step
from cli import cli
from indexer.client import build_client
from indexer.setup import SetupReport
from tests.esnode import SecureNode
from tests.integration.test_chain import KEY_BYTES, ship_chained
from tests.system.test_least_privilege import mint

pytestmark = [pytest.mark.integration, pytest.mark.compat]


@dataclass
class Site:
    """Where a row runs: the node, who ships and forges, who tampers, who verifies."""

    url: str
    namespace: str
    admin: Elasticsearch
    writer: Elasticsearch
    auditor_env: dict[str, str] = field(default_factory=dict)
    shipped: dict[str, Any] = field(default_factory=dict)
    state: Path = Path()
    key_file: Path = Path()

    @property
    def events(self) -> str:
        return f"logs-appmixer.audit-{self.namespace}"

    @property
    def checkpoints(self) -> str:
        return f"appmixer-audit.checkpoints-{self.namespace}"

    def verify(self, *args: str, key: bool = True) -> tuple[int, str]:
        # The auditor's reader key may not refresh: make what was just written visible.
        self.admin.indices.refresh(
            index=[self.events, self.checkpoints], ignore_unavailable=True, allow_no_indices=True
        )
        argv = ["verify", "--es-url", self.url, "--namespace", self.namespace]
        if key:
            argv += ["--key-file", str(self.key_file)]
        result = CliRunner().invoke(cli, [*argv, *args], env=self.auditor_env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, result.output

    def by_stream(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored chained event (``_id``, ``_index``, ``_source``), by stream and seq."""
        self.admin.indices.refresh(index=self.events)
        hits = self.admin.search(
            index=self.events, size=10_000, query={"match_all": {}}, seq_no_primary_term=True
        ).body
        streams: dict[str, list[dict[str, Any]]] = {}
        for hit in hits["hits"]["hits"]:
            chain = hit["_source"]["appmixer"]["chain"]
            streams.setdefault(chain["stream"], []).append(hit)
        for hits_of in streams.values():
            hits_of.sort(key=lambda hit: hit["_source"]["appmixer"]["chain"]["seq"])
        return streams

    def biggest(self) -> list[dict[str, Any]]:
        return max(self.by_stream().values(), key=len)


def _findings(output: str, kind: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(kind.upper() + " ")]


def _forge_after(
    hits: list[dict[str, Any]], at: int, count: int, prefix: str
) -> list[dict[str, Any]]:
    """``count`` events linked correctly after the event at index ``at`` of ``hits``."""
    base = hits[at]["_source"]
    chain = base["appmixer"]["chain"]
    head = Head(chain["stream"], chain["seq"], base["event"]["hash"], base["event"]["id"])
    forged = []
    for n in range(count):
        model = hits[min(at + 1 + n, len(hits) - 1)]["_source"]
        doc = copy.deepcopy(model)
        event_id = f"{prefix}{n:03d}"
        doc["event"]["id"] = event_id
        doc["message"] = "Nothing happened"
        del doc["appmixer"]["chain"]
        doc["event"].pop("ingested", None)
        doc["event"]["hash"] = content_digest(doc)
        head = step(head, event_id, doc)
        doc["event"]["ingested"] = model["event"].get("ingested")
        forged.append(doc)
    return forged


@pytest.fixture(params=["plain", "secured"])
def site(request: pytest.FixtureRequest, tmp_path: Path, installed: SetupReport) -> Iterator[Site]:
    """Events shipped and signed in two rounds (the agent's sink, chains and signer)."""
    state = tmp_path / "state"
    key_file = tmp_path / "chain.key"
    key_file.write_bytes(KEY_BYTES + b"\n")
    if request.param == "plain":
        es: Elasticsearch = request.getfixturevalue("es")
        url: str = request.getfixturevalue("es_url")
        namespace: str = request.getfixturevalue("namespace")
        built = Site(url, namespace, es, es, state=state, key_file=key_file)
        built.shipped = ship_chained(es, url, namespace, state, parts=2)
        yield built
        return
    secure: SecureNode = request.getfixturevalue("secure_es")
    admin: Elasticsearch = request.getfixturevalue("secure_admin")
    namespace = "w" + uuid.uuid4().hex[:10]
    writer_key = mint(secure, "writer", namespace, tmp_path)
    reader_key = mint(secure, "reader", namespace, tmp_path)
    # The agent's own client: requests marked compatible-with the node's major (8.x too).
    writer = build_client(
        [secure.url], api_key=writer_key.read_text().strip(), ca_certs=secure.ca_certs,
        timeout=60,
    )  # fmt: skip
    env = {
        k: v for k, v in secure.env(api_key_file=reader_key).items() if k != "APPMIXER_AUDIT_ES_URL"
    }
    built = Site(secure.url, namespace, admin, writer, env, state=state, key_file=key_file)
    built.shipped = ship_chained(writer, secure.url, namespace, state, parts=2)
    try:
        yield built
    finally:
        writer.close()
        _remove(admin, namespace)


def _remove(es: Elasticsearch, namespace: str) -> None:
    from tests.esnode import remove_targets

    remove_targets(es, namespace)
    es.options(ignore_status=404).indices.delete(index=f"appmixer-audit.checkpoints-{namespace}")


class TestWriterKeyAttacks:
    """Rows 1, 2, 3 and 5: forgeries with the writer key (create only)."""

    def test_untouched_is_intact(self, site: Site) -> None:
        code, output = site.verify()
        assert code == 0, output
        assert f"intact; 3 streams, {len(site.shipped['ids'])} events verified" in output

    def test_row1_malformed_checkpoints_are_findings_not_tracebacks(self, site: Site) -> None:
        """A checkpoint document with a zoneless time, a time that is no date, fields of
        the wrong type, or no checkpoint at all: one BAD_CHECKPOINT each, naming its _id."""
        (_doc_id, genuine), *_ = _stored_checkpoints(site)
        body = genuine.to_document()
        variants: dict[str, Any] = {}
        zoneless = copy.deepcopy(body)
        zoneless["appmixer"]["checkpoint"]["time"] = "2026-01-01T00:00:00"
        variants["bad-zoneless"] = zoneless
        not_a_date = copy.deepcopy(body)
        not_a_date["appmixer"]["checkpoint"]["time"] = "yesterday"
        variants["bad-notadate"] = not_a_date
        wrong_types = copy.deepcopy(body)
        wrong_types["appmixer"]["checkpoint"]["heads"] = "all of them"
        wrong_types["appmixer"]["checkpoint"]["seq"] = {"n": 1}
        variants["bad-types"] = wrong_types
        variants["bad-shape"] = {"appmixer": {"other": 1}, "@timestamp": "2026-01-01T00:00:00Z"}
        for doc_id, doc in variants.items():
            site.writer.create(index=site.checkpoints, id=doc_id, document=doc, refresh=True)
        for args in ([], ["--format", "json"]):
            code, output = site.verify(*args)
            assert code == 1, output
            assert "Traceback" not in output
        code, output = site.verify()
        bad = _findings(output, "bad_checkpoint")
        assert len(bad) == len(variants), output
        for doc_id in variants:
            assert sum(f"_id {doc_id}:" in line for line in bad) == 1, (doc_id, bad)
        code, output = site.verify(key=False)
        assert code == 1, output
        assert "Traceback" not in output
        assert len(_findings(output, "bad_checkpoint")) == len(variants)

    def test_row2_fork_named_genuine_branch_by_signed_head(self, site: Site) -> None:
        """Correctly linked forgeries after seq N-5, with _ids that sort first: one FORK
        naming the forged branch and the genuine one; the genuine events are verified."""
        hits = site.biggest()
        at = len(hits) - 6  # the event at seq N-5
        forged = _forge_after(hits, at, 8, "0000fork-")
        for doc in forged:
            site.writer.create(index=site.events, id=doc["event"]["id"], document=doc)
        code, output = site.verify()
        assert code == 1, output
        (fork,) = _findings(output, "fork")
        assert "0000fork-000..0000fork-007 (8 linked correctly)" in fork
        genuine_next = hits[at + 1]["_id"]
        assert f"the signed branch goes on with event {genuine_next}" in fork
        assert "NOT intact: 1 fork" in output.splitlines()[-1]
        assert f"{len(site.shipped['ids'])} events verified" in output

    def test_row3_copied_checkpoint_does_not_hide_a_deletion(self, site: Site) -> None:
        """A copy of a genuine checkpoint (from the pod's local file) with edited heads and
        the same signature, then five signed events deleted by an admin: BAD_CHECKPOINT
        names the copy's _id, the genuine checkpoint still counts, the deletion is found."""
        hits = site.biggest()
        local = list(read_local_checkpoints(site.state / LOCAL_NAME))
        last = local[-1]
        stream = hits[0]["_source"]["appmixer"]["chain"]["stream"]
        cut = hits[-6]
        heads = [
            h.model_copy(update={"seq": h.seq - 5, "hash": cut["_source"]["event"]["hash"],
                                 "event_id": cut["_id"]})
            if h.stream == stream else h
            for h in last.heads
        ]  # fmt: skip
        copied = last.model_copy(update={"heads": heads})
        site.writer.create(
            index=site.checkpoints, id="copied-checkpoint", document=copied.to_document(),
            refresh=True,
        )  # fmt: skip
        for hit in hits[-5:]:
            site.admin.delete(index=hit["_index"], id=hit["_id"], refresh=True)
        code, output = site.verify()
        assert code == 1, output
        (bad,) = _findings(output, "bad_checkpoint")
        assert "_id copied-checkpoint:" in bad
        (missing,) = _findings(output, "missing")
        seq = hits[-5]["_source"]["appmixer"]["chain"]["seq"]
        assert f"seq {seq}..{seq + 4}" in missing

    def test_row5_new_stream_from_nowhere(self, site: Site) -> None:
        """A brand-new, correctly linked stream of 50 events: UNSIGNED, in no checkpoint."""
        hits = site.biggest()
        head = Head.genesis("f" * 32)
        for n in range(50):
            doc = copy.deepcopy(hits[n]["_source"])
            event_id = f"new-stream-{n:03d}"
            doc["event"]["id"] = event_id
            del doc["appmixer"]["chain"]
            doc["event"]["hash"] = content_digest(doc)
            head = step(head, event_id, doc)
            site.writer.create(index=site.events, id=event_id, document=doc)
        code, output = site.verify()
        assert code == 1, output
        (unsigned,) = _findings(output, "unsigned")
        assert f"stream {'f' * 32} seq 1..50" in unsigned
        assert "50 events in no checkpoint of its agent" in unsigned


def _stored_checkpoints(site: Site) -> list[tuple[str, Any]]:
    from chain.checkpoint import Checkpoint

    site.admin.indices.refresh(index=site.checkpoints)
    hits = site.admin.search(index=site.checkpoints, size=100, sort=["@timestamp"]).body
    return [(h["_id"], Checkpoint.from_document(h["_source"])) for h in hits["hits"]["hits"]]


def _delete_checkpoints(site: Site, ids: list[str]) -> None:
    """As an index admin: delete checkpoint documents from their backing index."""
    found = site.admin.search(index=site.checkpoints, query={"ids": {"values": ids}}).body
    for hit in found["hits"]["hits"]:
        site.admin.delete(index=hit["_index"], id=hit["_id"], refresh=True)


class TestAdminAndOperator:
    """Rows 4, 9, 11 and 12 (plain node)."""

    @pytest.fixture
    def plain(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport,
        tmp_path: Path,
    ) -> Site:  # fmt: skip
        key_file = tmp_path / "chain.key"
        key_file.write_bytes(KEY_BYTES + b"\n")
        built = Site(es_url, namespace, es, es, state=tmp_path / "state", key_file=key_file)
        built.shipped = ship_chained(es, es_url, namespace, built.state, parts=2)
        return built

    def test_row4_deleted_older_checkpoint_and_idle_tail(self, plain: Site) -> None:
        """The first checkpoint deleted (it held the head of a stream idle since), then that
        stream's last events: the checkpoint chain has a hole, and the later checkpoint,
        which lists every stream, still signs the idle head: both are findings."""
        streams = plain.by_stream()
        stored = _stored_checkpoints(plain)
        first_id, first = stored[0]
        second = stored[1][1]
        idle = [h.stream for h in second.heads if h in first.heads]
        assert idle, "the sample file's stream is idle in the second round"
        hits = streams[idle[0]]
        _delete_checkpoints(plain, [first_id])
        gone = hits[-min(20, len(hits) // 2) :]
        for hit in gone:
            plain.admin.delete(index=hit["_index"], id=hit["_id"], refresh=True)
        code, output = plain.verify()
        assert code == 1, output
        assert len(_findings(output, "missing_checkpoint")) == 1, output
        (missing,) = _findings(output, "missing")
        seq = gone[0]["_source"]["appmixer"]["chain"]["seq"]
        assert f"seq {seq}..{seq + len(gone) - 1}" in missing
        assert "newer than the last signed checkpoint" in output
        assert " 0 newer" in output

    def test_row9_nothing_verifiable_is_not_success(self, plain: Site, tmp_path: Path) -> None:
        """A wrong key, a mistyped namespace, events without checkpoints, --since in the
        future: exit 4 and NOTHING VERIFIED, never 0."""
        wrong = tmp_path / "wrong.key"
        wrong.write_bytes(b"w" * 40)
        code, output = plain.verify("--key-file", str(wrong), key=False)
        assert code == 4, output
        assert "NOTHING VERIFIED" in output
        typo = Site(plain.url, plain.namespace + "x", plain.admin, plain.admin,
                    key_file=plain.key_file)  # fmt: skip
        code, output = typo.verify()
        assert code == 4, output
        code, output = plain.verify("--since", "2999-01-01T00:00:00Z")
        assert code == 4, output
        _delete_checkpoints(plain, [doc_id for doc_id, _ in _stored_checkpoints(plain)])
        code, output = plain.verify()
        assert code == 4, output
        code, output = plain.verify(key=False)
        assert code == 4, output

    def test_row9_configuration_and_connection_errors(self, plain: Site, tmp_path: Path) -> None:
        """A missing key file or one with a byte-order mark: exit 2; a node that does not
        answer: exit 5 (not a finding)."""
        code, output = plain.verify("--key-file", str(tmp_path / "absent.key"), key=False)
        assert code == 2, output
        bom = tmp_path / "bom.key"
        bom.write_bytes(b"\xef\xbb\xbf" + KEY_BYTES)
        code, output = plain.verify("--key-file", str(bom), key=False)
        assert code == 2, output
        assert "byte-order mark" in output
        down = Site("http://127.0.0.1:9", plain.namespace, plain.admin, plain.admin,
                    key_file=plain.key_file)  # fmt: skip
        code, output = down.verify()
        assert code == 5, output
        code, output = plain.verify(key=False)
        assert code == 4, output
        result = subprocess.run(
            [sys.executable, "-m", "agent", "verify", "--es-url", plain.url],
            env={**os.environ, "APPMIXER_AUDIT_CHAIN_CHECKPOINT_INTERVAL": "inf"},
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "must be a finite number" in result.stderr
        agent = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--once", "--path", str(tmp_path / "x.log"),
             "--es-url", plain.url, "--namespace", plain.namespace,
             "--state-dir", str(tmp_path / "run-state")],
            env={**os.environ, "APPMIXER_AUDIT_CHAIN_CHECKPOINT_INTERVAL": "inf"},
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert agent.returncode == 2, agent.stderr  # row 12: the agent refuses it too
        assert "CHAIN_CHECKPOINT_INTERVAL" in agent.stderr

    def test_row11_swapped_sources_are_altered(self, plain: Site) -> None:
        """Two whole _sources swapped, each kept under the other's _id: both ALTERED, named
        by _id, though each document is intact in itself."""
        hits = plain.biggest()
        one, two = hits[10], hits[11]
        for mine, theirs in ((one, two), (two, one)):
            plain.admin.index(
                index=mine["_index"], id=mine["_id"], document=theirs["_source"], refresh=True,
                if_seq_no=mine["_seq_no"], if_primary_term=mine["_primary_term"],
            )  # fmt: skip
        code, output = plain.verify()
        assert code == 1, output
        altered = _findings(output, "altered")
        assert len(altered) == 2, output
        for hit in (one, two):
            assert any(f"_id {hit['_id']}" in line for line in altered), altered


def test_checked_at(site: Site) -> None:
    """The signed checkpoints are in the index: a live agent would go on signing; these
    were taken on 2026-01-01 and -02, so nothing may be unsigned now."""
    stored = _stored_checkpoints(site)
    assert [c.seq for _, c in stored] == [1, 2]
    assert stored[-1][1].when < datetime.now(UTC)


class TestShowSaysWhatIsUnverified:
    """Row 11, the rest: what verify cannot see, show does not present as vouched for."""

    def test_forged_change_document_and_unchained_fields(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport,
        tmp_path: Path,
    ) -> None:  # fmt: skip
        """A change document <id>:7 added by the writer is not shown as the event's diff
        (a warning names it); the log path and ingest time are marked as not chained."""
        shipped = ship_chained(es, es_url, namespace, tmp_path / "state")
        events = f"logs-appmixer.audit-{namespace}"
        changes = f"logs-appmixer.audit_changes-{namespace}"
        es.indices.refresh(index=[events, changes])
        query = {"range": {"appmixer.audit.changes_count": {"gte": 1, "lt": 7}}}
        (hit,) = es.search(index=events, query=query, size=1).body["hits"]["hits"]
        event_id = hit["_id"]
        assert event_id in shipped["ids"]
        model = es.search(index=changes, query={"term": {"event.id": event_id}}, size=1).body
        forged = copy.deepcopy(model["hits"]["hits"][0]["_source"])
        forged["appmixer"]["change"].update(index=7, new='"forged-value"')
        es.create(index=changes, id=f"{event_id}:7", document=forged, refresh=True)
        argv = ["show", event_id, "--es-url", es_url, "--namespace", namespace]
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 0, result.output
        assert "forged-value" not in result.output
        assert "Warning: 1 change document(s) (index 7) do not match" in result.output
        log_line = next(line for line in result.output.splitlines() if line.startswith("Log"))
        assert log_line.endswith("(not covered by the hash chain)")


class TestManyStreams:
    def test_since_with_twenty_thousand_streams(
        self, es: Elasticsearch, es_url: str, namespace: str, installed: SetupReport,
        tmp_path: Path,
    ) -> None:  # fmt: skip
        """--since anchors 20,000 streams at once (past the node's clause limit, which the
        old one-clause-per-stream query hit at about 4,000): one query, exit 0."""
        from agent.evidence.chains import Signer
        from chain.checkpoint import ChainKey
        from chain.link import stream_id
        from indexer.chain_index import write_checkpoint
        from tests.integration.conftest import make_settings

        settings = make_settings(es_url, namespace)
        days = iter([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)])
        signer = Signer(
            ChainKey(KEY_BYTES), "test-host", tmp_path,
            lambda checkpoint: write_checkpoint(es, settings.checkpoints_target, checkpoint),
            now=lambda: next(days),
        )  # fmt: skip
        streams = 20_000
        heads = [Head.genesis(stream_id("test-host", f"{n:032x}")) for n in range(streams)]

        def chained(round_: int) -> list[dict[str, Any]]:
            actions = []
            for n in range(streams):
                event_id = f"s{n}-{round_}"
                doc: dict[str, Any] = {
                    "@timestamp": f"2026-01-0{round_ + 1}T00:00:00Z",
                    "event": {"id": event_id, "action": "flow.updated"},
                    "host": {"name": "test-host"},
                    "message": "Flow Updated",
                    "appmixer": {"audit": {"type": "update"}},
                }
                doc["event"]["hash"] = content_digest(doc)
                heads[n] = step(heads[n], event_id, doc)
                actions.append({"_op_type": "create", "_index": settings.events_target,
                                "_id": event_id, "_source": doc})  # fmt: skip
            return actions

        from elasticsearch import helpers

        for round_ in (1, 2):
            _ok, errors = helpers.bulk(es, chained(round_), chunk_size=5_000, raise_on_error=False)
            assert errors == [], errors[:2]
            signer.checkpoint([(h, None) for h in heads], [], final=round_ == 2)
        site = Site(es_url, namespace, es, es, key_file=tmp_path / "chain.key")
        site.key_file.write_bytes(KEY_BYTES)
        code, output = site.verify("--since", "2026-01-02T00:00:00Z")
        assert code == 0, output[-2000:]
        assert f"intact; {streams} streams, {streams} events verified, 0 newer" in output
