"""Planted secrets reach nowhere: not the node, not the agent's logs, registry or metrics.

Audit lines carry passwords, tokens, API keys, private keys, cookies and JWTs in ``before``,
``after``, ``data``, an envelope and fields the agent does not know, under secret-looking
keys and under innocent ones. The agent ships them over HTTPS with the writer key; then
every document of every index on the node (hidden and system ones included, the whole
``_source``, so fields that are stored but not indexed count too) is read back and searched,
and so are the agent's stdout and stderr, every file under its state directory and its
``/metrics`` page. Each secret carries a unique marker; no marker may be found anywhere.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers

from indexer.access import create_api_key
from indexer.setup import install
from tests.esnode import PORT_OFFSET, SecureNode
from tests.system.conftest import Agent, count, targets, unique_namespace, wait_for_count

pytestmark = [
    pytest.mark.system,
    # Reading .security on purpose: the scan covers system indices too.
    pytest.mark.filterwarnings("ignore::elasticsearch.ElasticsearchWarning"),
]

METRICS_PORT = 9341 + PORT_OFFSET  # the range left for servers a test starts itself


def marker() -> str:
    """Sixteen capitals and digits: fits every credential format below, and is unique."""
    return secrets.token_hex(8).upper()


@dataclass(frozen=True)
class Planted:
    kind: str
    marker: str
    value: str


def plant() -> list[Planted]:
    made = []
    for kind, shape in (
        ("password", "Pw!{m}"),
        ("token", "tok_{m}"),
        ("api key", "ak_{m}"),
        ("client secret", "cs_{m}"),
        ("session", "sess_{m}"),
        (
            "private key",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpA{m}\n-----END RSA PRIVATE KEY-----",
        ),
        ("cookie", "sid={m}; Path=/; HttpOnly"),
        ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIi{m}In0.{m}sig"),
        ("bearer", "Bearer {m}"),
        ("aws key", "AKIA{m}"),
        ("url password", "https://svc:{m}@db.internal.example/app"),
        ("free-text password", "retrying with password={m} after timeout"),
        ("pair value", "{m}-smtp"),
        ("envelope cookie", "connect.sid={m}"),
        ("unknown jwt", "eyJhbGciOiJub25lIn0.eyJ1{m}.x"),
    ):
        m = marker()
        made.append(Planted(kind, m, shape.replace("{m}", m)))
    credential = base64.b64encode(f"admin:{marker()}".encode()).decode()
    made.append(Planted("basic", credential, "Basic " + credential))  # the encoded form
    return made


def lines(p: dict[str, str], control: str) -> list[dict[str, Any]]:
    """Audit lines with the secrets in every place a line can hold them; ``control`` is a
    harmless value stored only in ``before`` (kept, not indexed), which the scan must find."""
    return [
        {
            "id": "hyg-1",
            "created": "2026-11-27T10:00:00Z",
            "action": "User Updated",
            "email": "admin@acme.example",
            "entity": {"type": "user", "id": "u-1"},
            "before": {
                "password": p["password"],
                "profile": {"apiKey": p["api key"], "displayName": control},
            },
            "after": {
                "password": p["password"] + "x",
                "profile": {"apiKey": p["api key"] + "x", "sessions": [{"token": p["token"]}]},
                "keys": [{"privateKey": p["private key"]}],
            },
            "data": {"headers": {"cookie": p["cookie"], "authorization": p["bearer"]}},
        },
        {
            "id": "hyg-2",
            "created": "2026-11-27T10:00:01Z",
            "action": "Configuration Updated",
            "email": "admin@acme.example",
            "before": {"entries": [{"key": "SMTP_PASSWORD", "value": "old-" + p["pair value"]}]},
            "after": {
                "entries": [{"key": "SMTP_PASSWORD", "value": p["pair value"]}],
                "oauth": {"clientSecret": p["client secret"], "note": p["jwt"]},
                "dsn": p["url password"],
            },
            "details": {"log": p["free-text password"], "aws": p["aws key"]},
        },
        {
            "id": "hyg-3",
            "created": "2026-11-27T10:00:02Z",
            "action": "Flow Updated",
            "flowId": "f-1",
            "userId": "u-2",
            "sessionId": p["session"],
            "debugInfo": {"description": p["private key"], "auth": p["basic"]},
            "somethingNew": p["unknown jwt"],
            "changes": [{"path": "/config/token", "old": "a", "new": p["token"] + "new"}],
        },
        {
            "level": 30,
            "time": 1795600000000,
            "msg": "audit",
            "req": {"headers": {"cookie": p["envelope cookie"]}},
            "audit": {
                "id": "hyg-4",
                "action": "Connector Updated",
                "email": "ops@acme.example",
                "before": {"auth": {"accessToken": p["token"] + "old"}},
                "after": {"auth": {"accessToken": p["token"] + "new2", "ok": True}},
            },
        },
    ]


def scan_node(admin: Elasticsearch, needles: list[str]) -> tuple[dict[str, list[str]], int]:
    """Every document of every index (hidden and system too): where each needle occurs."""
    found: dict[str, list[str]] = {}
    scanned = 0
    for row in admin.cat.indices(format="json", expand_wildcards="all"):
        index = str(row["index"])
        for hit in helpers.scan(admin, index=index, query={"query": {"match_all": {}}}):
            scanned += 1
            text = json.dumps(hit, ensure_ascii=False)
            for needle in needles:
                if needle in text or needle.lower() in text:
                    found.setdefault(needle, []).append(f"{index}/{hit['_id']}")
    for needle in needles:  # indexed-only content (copy_to, keyword fields): by query too
        for term in (needle, needle.lower()):
            query = {"query_string": {"query": f"*{term}*", "fields": ["*"], "lenient": True}}
            answer = admin.search(index="*", expand_wildcards="all", query=query, size=5)
            for hit in answer["hits"]["hits"]:
                found.setdefault(needle, []).append(f"{hit['_index']}/{hit['_id']} (query)")
    return found, scanned


def occurrences(text: str, planted: list[Planted]) -> list[str]:
    return [p.kind for p in planted if p.marker in text or p.marker.lower() in text]


def test_planted_secrets_are_found_nowhere(
    secure_es: SecureNode, secure_admin: Elasticsearch, tmp_path: Path
) -> None:
    """Zero hits for every planted secret in the node, the logs, the registry and metrics."""
    planted = plant()
    by_kind = {p.kind: p.value for p in planted}
    namespace = unique_namespace("hyg")
    events_target, changes_target = targets(namespace)
    assert install(secure_admin, events_target, changes_target).ok
    logs = tmp_path / "logs"
    logs.mkdir()
    audit = logs / "audit.ndjson"
    control = "Control" + marker()
    audit.write_text("".join(json.dumps(line) + "\n" for line in lines(by_kind, control)))
    assert occurrences(audit.read_text(), planted) == [p.kind for p in planted]

    key_file = tmp_path / "writer.key"
    key_file.touch(mode=0o600)
    key_file.write_text(create_api_key(secure_admin, "writer").encoded + "\n")
    state = tmp_path / "state"
    agent = Agent(
        [str(logs / "*.ndjson")],
        es_url=secure_es.url,
        namespace=namespace,
        state_dir=state,
        extra=["--metrics-address", f"127.0.0.1:{METRICS_PORT}"],
        env={**secure_es.env(api_key_file=key_file), "APPMIXER_AUDIT_LOG_LEVEL": "debug"},
    )
    assert wait_for_count(secure_admin, events_target, 4, 120, agent) == 4
    time.sleep(1.5)  # let the checkpoint and the change documents settle
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as page:
        metrics = page.read().decode()
    assert "appmixer" in metrics
    assert agent.terminate() == 0
    assert count(secure_admin, changes_target) > 0

    needles = [p.marker for p in planted]
    in_node, scanned = scan_node(secure_admin, [control, *needles])
    assert scanned > 0
    assert in_node.get(control), "the scan must see what is stored but not indexed"
    leaks = {p.kind: in_node[p.marker] for p in planted if p.marker in in_node}
    assert leaks == {}, f"secrets stored in Elasticsearch: {leaks}"

    agent_output = agent.stderr_path.read_text() + agent.stdout()
    assert occurrences(agent_output, planted) == [], "secrets in the agent's logs"
    for path in sorted(p for p in state.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert occurrences(text, planted) == [], f"secrets in {path}"
    assert occurrences(metrics, planted) == [], "secrets in /metrics"
