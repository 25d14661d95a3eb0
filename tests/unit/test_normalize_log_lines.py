"""The rule that tells an audit record from another program's log line in the same file
(docs/agent.md, "Every line read has exactly one fate"): a bare record whose action is outside
the catalog, with a logger's ``level`` and nothing an audit record names (an id, a user, a
flow, an entity, a tenant, a change, a creation time), is skipped. Every other line is kept,
so actions newer than the catalog are still indexed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent.normalize import Normalized, NormalizeOptions, Normalizer, Skipped

NOW = "2026-03-01T10:00:00Z"
normalize = Normalizer(NormalizeOptions(host_name="pod-a"))


def outcome(record: dict[str, Any]) -> Normalized | Skipped:
    result = normalize(orjson.dumps(record))
    assert isinstance(result, Normalized | Skipped), result
    return result


@pytest.mark.parametrize(
    "line",
    [
        {"event": "run_finished", "level": "info", "timestamp": NOW},
        {"event": "cache.flushed", "level": 30, "time": NOW, "msg": "flushed", "pid": 7},
        {"eventName": "worker started", "level": "debug", "@timestamp": NOW, "hostname": "h"},
    ],
)
def test_a_log_line_is_skipped(line: dict[str, Any]) -> None:
    result = outcome(line)
    assert isinstance(result, Skipped)
    assert result.reason.startswith("not an audit record: a log line")


@pytest.mark.parametrize(
    ("line", "catalog"),
    [
        # A newer Appmixer's action, with a level too: it names who acted.
        ({"action": "Flow Archived", "level": "info", "userId": "u1", "timestamp": NOW}, False),
        ({"action": "flow.archived", "level": "info", "flowId": "f1", "timestamp": NOW}, False),
        ({"action": "flow.archived", "level": "info", "entityId": "e1", "timestamp": NOW}, False),
        ({"action": "key.rotated", "level": "info", "tenantId": "t1", "timestamp": NOW}, False),
        ({"action": "key.rotated", "level": "info", "id": "a-1", "timestamp": NOW}, False),
        ({"action": "key.rotated", "level": "info", "created": NOW}, False),
        ({"action": "key.rotated", "level": "info", "time": NOW, "before": {}, "after": {}}, False),
        # In the catalog: an audit event whatever else the line carries.
        ({"event": "Flow Created", "level": "info", "timestamp": NOW}, True),
        # No level: not a logger's line; an action outside the catalog is indexed.
        ({"event": "run_finished", "timestamp": NOW}, False),
        # Under the envelope key: an audit record by its place.
        ({"level": 30, "time": NOW, "audit": {"action": "key.rotated", "created": NOW}}, False),
        ({"level": 30, "time": NOW, "audit": {"action": "key.rotated"}}, False),
    ],
)
def test_an_audit_record_is_kept(line: dict[str, Any], catalog: bool) -> None:
    result = outcome(line)
    assert isinstance(result, Normalized)
    assert result.event["appmixer"]["audit"]["catalog"] is catalog
