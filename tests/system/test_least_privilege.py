"""Least privilege on the secured node: what the writer and reader keys may and may not do.

Keys are minted by ``setup --create-api-key`` run with the superuser; every refusal below is
the node's own answer (403), and after them the stored events are checked to be unchanged.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AuthorizationException, BadRequestError, Elasticsearch

from devtools.simulate import write_events
from indexer.client import build_client
from indexer.inflight import RequestWatch
from tests.esnode import SecureNode
from tests.system.conftest import Agent, parse_summary

pytestmark = [pytest.mark.system, pytest.mark.compat]

EVENTS = 120
DELETE_BY_QUERY = "indices:data/write/delete/byquery"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def mint(secure_es: SecureNode, role: str, namespace: str, folder: Path) -> Path:
    """``setup --create-api-key ROLE`` as the superuser; the key (last line) into a 0600 file."""
    result = cli("setup", "--namespace", namespace, "--create-api-key", role, env=secure_es.env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith(f"API key appmixer-audit-{role}-")
    key_file = folder / f"{role}.key"
    key_file.touch(mode=0o600)
    key_file.write_text(lines[-1] + "\n")
    return key_file


@dataclass
class Keys:
    namespace: str
    writer_file: Path
    reader_file: Path
    writer: Elasticsearch
    reader: Elasticsearch
    shipped: Agent
    backing_index: str
    sample: dict[str, Any]  # one stored event: _id, _source, _seq_no, _primary_term
    chain_key: Path  # the agent signed its chain checkpoints with it


@pytest.fixture(scope="module")
def keys(
    secure_es: SecureNode, secure_admin: Elasticsearch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keys]:
    folder = tmp_path_factory.mktemp("least-privilege")
    namespace = "lp" + uuid.uuid4().hex[:8]
    writer_file = mint(secure_es, "writer", namespace, folder)
    reader_file = mint(secure_es, "reader", namespace, folder)
    logs = folder / "logs"
    logs.mkdir()
    with (logs / "audit.ndjson").open("wb") as out:
        write_events(out, EVENTS, seed=12)
    chain_key = folder / "chain.key"
    chain_key.write_text(os.urandom(32).hex() + "\n")
    agent = Agent(
        [str(logs / "*.ndjson")],
        es_url=secure_es.url,
        namespace=namespace,
        state_dir=folder / "state",
        once=True,
        env={
            **secure_es.env(api_key_file=writer_file),
            "APPMIXER_AUDIT_CHAIN_KEY_FILE": str(chain_key),
        },
    )
    assert agent.wait(timeout=180) == 0, agent.tail()
    target = f"logs-appmixer.audit-{namespace}"
    secure_admin.indices.refresh(index=target)
    hits = secure_admin.search(index=target, size=1, sort=["@timestamp"], seq_no_primary_term=True)[
        "hits"
    ]["hits"]
    hit = hits[0]

    def client(key_file: Path) -> Elasticsearch:
        key = key_file.read_text().strip()
        return build_client([secure_es.url], ca_certs=secure_es.ca_certs, api_key=key)

    found = Keys(
        namespace,
        writer_file,
        reader_file,
        client(writer_file),
        client(reader_file),
        agent,
        hit["_index"],
        {key: hit[key] for key in ("_id", "_source", "_seq_no", "_primary_term")},
        chain_key,
    )
    yield found
    found.writer.close()
    found.reader.close()


def events_target(keys: Keys) -> str:
    return f"logs-appmixer.audit-{keys.namespace}"


class TestWriterKey:
    def test_ships_everything_over_https(self, keys: Keys, secure_admin: Elasticsearch) -> None:
        """The agent with the writer key ships every event, and the node holds each once."""
        summary = parse_summary(keys.shipped.stdout())
        assert summary["shipped"] == EVENTS
        assert secure_admin.count(index=events_target(keys))["count"] == EVENTS
        who = keys.writer.security.authenticate()
        assert who["authentication_type"] == "api_key"

    def test_sees_its_own_requests_executing(self, keys: Keys) -> None:
        """The replay check waits for requests still executing (``indexer.inflight``): the
        writer key may read the task list, so that wait never goes blind."""
        watch = RequestWatch(keys.writer, ["any-run"])
        assert watch.running() == 0
        watch.settle()
        assert not watch.blind

    def test_a_key_without_monitor_is_warned_about_not_stuck(
        self, keys: Keys, secure_es: SecureNode, secure_admin: Elasticsearch
    ) -> None:
        """A hand-made key without the cluster monitor privilege cannot read the task list:
        the watch says so once and lets the replay check go ahead (it never loops on 403)."""
        minted = secure_admin.security.create_api_key(
            name=f"no-monitor-{keys.namespace}",
            role_descriptors={
                "no_monitor": {
                    "cluster": [],
                    "indices": [{"names": [events_target(keys)], "privileges": ["read"]}],
                }
            },
        )
        es = build_client([secure_es.url], ca_certs=secure_es.ca_certs, api_key=minted["encoded"])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the task API is marked "technical preview"
                with pytest.raises(AuthorizationException):
                    es.tasks.list(actions="indices:data/write/bulk*")
            watch = RequestWatch(es, ["any-run"])
            watch.settle()
            assert watch.blind
            watch.settle()  # and once blind, no further request
            assert watch.waited == 0
        finally:
            es.close()

    def test_update_is_refused(self, keys: Keys) -> None:
        """Updating a stored event is refused by the node."""
        with pytest.raises(AuthorizationException):
            keys.writer.update(
                index=keys.backing_index, id=keys.sample["_id"], doc={"message": "forged"}
            )

    def test_overwrite_is_refused(self, keys: Keys) -> None:
        """Re-indexing a stored event's id with other content (op_type index) is refused."""
        with pytest.raises(AuthorizationException):
            keys.writer.index(
                index=keys.backing_index,
                id=keys.sample["_id"],
                document={**keys.sample["_source"], "message": "forged"},
                if_seq_no=keys.sample["_seq_no"],
                if_primary_term=keys.sample["_primary_term"],
            )

    def test_delete_is_refused(self, keys: Keys) -> None:
        """Deleting a stored event is refused by the node."""
        with pytest.raises(AuthorizationException):
            keys.writer.delete(index=keys.backing_index, id=keys.sample["_id"])

    def test_delete_by_query_is_refused(self, keys: Keys) -> None:
        """Deleting by query is refused, or, where the node lacks the API (the integ-test
        distribution has no reindex module), the node says the key may not run it."""
        try:
            keys.writer.delete_by_query(index=events_target(keys), query={"match_all": {}})
        except AuthorizationException:
            return
        except BadRequestError as exc:
            reason = str(exc)
        else:
            reason = "delete_by_query was accepted"
        assert "no handler found" in reason, reason
        answer = keys.writer.security.has_privileges(
            index=[{"names": [events_target(keys)], "privileges": [DELETE_BY_QUERY, "delete"]}]
        )
        assert answer["index"][events_target(keys)] == {DELETE_BY_QUERY: False, "delete": False}

    def test_settings_change_is_refused(self, keys: Keys) -> None:
        """Changing index settings (e.g. making the index writable by others) is refused."""
        with pytest.raises(AuthorizationException):
            keys.writer.indices.put_settings(
                index=events_target(keys), settings={"index": {"refresh_interval": "30s"}}
            )

    def test_reading_another_index_is_refused(
        self, keys: Keys, secure_admin: Elasticsearch
    ) -> None:
        """An index outside the audit targets cannot be read, nor can the security index."""
        other = f"unrelated-{keys.namespace}"
        secure_admin.index(index=other, document={"note": "not the agent's"}, refresh=True)
        try:
            for index in (other, ".security"):
                with pytest.raises(AuthorizationException):
                    keys.writer.search(index=index)
        finally:
            secure_admin.indices.delete(index=other)

    def test_stored_events_are_unchanged(self, keys: Keys, secure_admin: Elasticsearch) -> None:
        """After every refused attempt the event and the count are what was shipped."""
        stored = secure_admin.get(index=keys.backing_index, id=keys.sample["_id"])
        assert stored["_source"] == keys.sample["_source"]
        assert secure_admin.count(index=events_target(keys))["count"] == EVENTS


class TestReaderKey:
    def test_search_and_show(self, keys: Keys, secure_es: SecureNode) -> None:
        """search and show work with the reader key."""
        env = secure_es.env(api_key_file=keys.reader_file)
        found = cli(
            "search", "--namespace", keys.namespace, "--size", "500", "--format", "json", env=env
        )
        assert found.returncode == 0, found.stderr
        assert len(found.stdout.strip().splitlines()) == EVENTS
        assert keys.sample["_id"] in found.stdout
        shown = cli("show", keys.sample["_id"], "--namespace", keys.namespace, env=env)
        assert shown.returncode == 0, shown.stderr
        assert keys.sample["_id"] in shown.stdout

    def test_cannot_write(self, keys: Keys) -> None:
        """Creating a document is refused by the node."""
        with pytest.raises(AuthorizationException):
            keys.reader.create(
                index=events_target(keys), id="reader-forgery", document={"message": "forged"}
            )

    def test_agent_refuses_to_start_in_one_line(
        self, keys: Keys, secure_es: SecureNode, tmp_path: Path
    ) -> None:
        """The agent started with the reader key exits 1 with one line that says why."""
        logs = tmp_path / "logs"
        logs.mkdir()
        out = io.BytesIO()
        write_events(out, 3, seed=5)
        (logs / "a.ndjson").write_bytes(out.getvalue())
        env = {**secure_es.env(api_key_file=keys.reader_file), "APPMIXER_AUDIT_LOG_LEVEL": "error"}
        result = cli(
            "run",
            "--once",
            "--path",
            str(logs / "*.ndjson"),
            "--namespace",
            keys.namespace,
            "--state-dir",
            str(tmp_path / "state"),
            env=env,
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("appmixer-audit: this credential may not write to ")
        assert "writer role" in lines[0]


class TestChainCheckpoints:
    def test_reader_verifies_what_the_writer_signed(
        self, keys: Keys, secure_es: SecureNode
    ) -> None:
        """The writer key stored the signed checkpoint; the reader key runs verify: intact,
        every event vouched for by a checkpoint read from the secured node."""
        env = secure_es.env(api_key_file=keys.reader_file)
        args = ["--namespace", keys.namespace, "--key-file", str(keys.chain_key)]
        result = cli("verify", *args, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"intact; 1 stream, {EVENTS} events verified, 0 newer" in result.stdout
        assert "0 checkpoints valid" not in result.stdout

    def test_writer_cannot_delete_a_checkpoint(
        self, keys: Keys, secure_admin: Elasticsearch
    ) -> None:
        """A stored checkpoint cannot be deleted with the writer key."""
        target = f"appmixer-audit.checkpoints-{keys.namespace}"
        secure_admin.indices.refresh(index=target)
        hit = secure_admin.search(index=target, size=1)["hits"]["hits"][0]
        with pytest.raises(AuthorizationException):
            keys.writer.delete(index=hit["_index"], id=hit["_id"])
