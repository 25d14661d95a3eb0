"""The detection rules on a real node: each fires on its attack and stays quiet on a benign day.

The agent ships a benign day and an attack day (``devtools.scenarios``) with ``run --once``.
Each rule then runs as the detection engine would run it over each day: one search every
``interval`` looking back ``from``, the Lucene query as ``query_string``, and for threshold
rules the composite aggregation with the engine's count and cardinality conditions. The
days are in the past, so their runs read ``@timestamp`` as if each event had been shipped as
it happened; the rules' own time field, ``event.ingested``, is tested with the attacks shipped
an hour late and run once, now. The rules read ``logs-appmixer.audit-*``; here the pattern is
narrowed to this test's namespace so other tests' data on the shared node cannot count.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from devtools.rules import (
    TIMESTAMP,
    Rule,
    execution_search,
    executions,
    load_all,
    threshold_alerts,
)
from devtools.scenarios import (
    ATTACK_DAY_MS,
    ATTACKS,
    BENIGN_DAY_MS,
    DAY_MS,
    MINUTE_MS,
    OTHER_TOKEN_ACTION,
    TOKEN_ACTION,
    Attack,
    Scenario,
    attack_user,
    late_attacks,
    write_day,
)
from tests.esnode import remove_targets
from tests.system.conftest import ship_once, targets

pytestmark = pytest.mark.system

RULES = load_all()
# Which attack of the attack day each rule is there to catch.
ATTACK_OF_RULE = {
    "Appmixer: Repeated Failed Logins for One User": "failed-logins",
    "Appmixer: Password Change Followed by Access Token Creation": "password-then-token",
    "Appmixer: Mass Deletion of Flows by One User": "mass-flow-deletion",
    "Appmixer: User Given Admin Rights": "admin-granted",
    "Appmixer: Audit Logging Configuration Changed or Disabled": "audit-logging-changed",
    "Appmixer: Activity from a User Outside Their Tenant": "cross-tenant",
}
DAYS: dict[Scenario, int] = {"benign": BENIGN_DAY_MS, "attack": ATTACK_DAY_MS}


@dataclass
class Alerts:
    """What one rule raised over one day: alert groups (threshold) or event ids (query)."""

    users: set[str] = field(default_factory=set)
    event_ids: set[str] = field(default_factory=set)
    runs: int = 0

    def __bool__(self) -> bool:
        return bool(self.users or self.event_ids)


@pytest.fixture(scope="module")
def shipped(
    es: Elasticsearch, es_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Both days shipped by the agent into a namespace of their own; yields its target."""
    work = tmp_path_factory.mktemp("rules")
    (work / "logs").mkdir()
    for scenario in DAYS:
        with (work / "logs" / f"{scenario}.ndjson").open("wb") as out:
            write_day(out, scenario)
    namespace = ship_once(es, es_url, work, "rules")
    yield targets(namespace)[0]
    remove_targets(es, namespace)


@pytest.fixture(scope="module")
def shipped_late(
    es: Elasticsearch, es_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The six attacks, all begun 65 minutes ago, shipped now: every event over an hour old
    when it reaches the index."""
    work = tmp_path_factory.mktemp("late")
    (work / "logs").mkdir()
    records = late_attacks(int(time.time() * 1000) - 65 * MINUTE_MS)
    lines = b"".join(orjson.dumps(record) + b"\n" for record in records)
    (work / "logs" / "late.ndjson").write_bytes(lines)
    namespace = ship_once(es, es_url, work, "late")
    yield targets(namespace)[0]
    remove_targets(es, namespace)


def alerts_of(rule: Rule, responses: list[dict[str, Any]], alerts: Alerts) -> Alerts:
    for response in responses:
        assert "error" not in response, response
        if rule.threshold is None:
            alerts.event_ids |= {hit["_id"] for hit in response["hits"]["hits"]}
        else:
            for bucket in threshold_alerts(rule, response):
                alerts.users.add(bucket["key"]["user.email"])
    return alerts


def run_rule(es: Elasticsearch, rule: Rule, target: str, scenario: Scenario) -> Alerts:
    """Every run of the rule while the day's data passes, as the detection engine runs it
    (on ``@timestamp``: the day is past, each event as if shipped when it happened)."""
    assert any(fnmatch.fnmatch(target, pattern) for pattern in rule.index)
    start = datetime.fromtimestamp(DAYS[scenario] / 1000, UTC)
    end = start + timedelta(milliseconds=DAY_MS)
    # Both days sit in one index, one after the other: a run sees only its own day.
    windows = [(max(a, start), min(b, end)) for a, b in executions(rule, start, end)]
    alerts = Alerts(runs=len(windows))
    for chunk in range(0, len(windows), 100):
        searches: list[dict[str, Any]] = []
        for window in windows[chunk : chunk + 100]:
            searches += [{"index": target}, execution_search(rule, window, TIMESTAMP)]
        alerts_of(rule, es.msearch(searches=searches).body["responses"], alerts)
    return alerts


def run_now(es: Elasticsearch, rule: Rule, target: str, time_field: str | None = None) -> Alerts:
    """One run of the rule, now, on its own time field (or ``time_field``)."""
    now = datetime.now(UTC)
    body = execution_search(rule, (now - rule.lookback(), now), time_field)
    return alerts_of(rule, [es.search(index=target, **body).body], Alerts(runs=1))


def day_events(es: Elasticsearch, target: str, scenario: Scenario, query: str) -> list[Any]:
    start = datetime.fromtimestamp(DAYS[scenario] / 1000, UTC)
    day = {"gte": start.isoformat(), "lt": (start + timedelta(milliseconds=DAY_MS)).isoformat()}
    search = {"bool": {"filter": [{"query_string": {"query": query}}, {"range": {TIMESTAMP: day}}]}}
    hits: list[Any] = es.search(index=target, query=search, size=100).body["hits"]["hits"]
    return hits


def _attack(rule: Rule) -> Attack:
    return next(attack for attack in ATTACKS if attack.name == ATTACK_OF_RULE[rule.name])


class TestRules:
    def test_every_rule_has_an_attack(self) -> None:
        """Six rules, six attacks, paired one to one."""
        assert sorted(ATTACK_OF_RULE) == sorted(rule.name for rule in RULES)
        assert sorted(ATTACK_OF_RULE.values()) == sorted(attack.name for attack in ATTACKS)

    @pytest.mark.parametrize("rule", RULES, ids=[rule.name.split(": ")[1] for rule in RULES])
    def test_quiet_on_the_benign_day(self, es: Elasticsearch, shipped: str, rule: Rule) -> None:
        """Not one alert over a whole ordinary day, near misses included."""
        alerts = run_rule(es, rule, shipped, "benign")
        assert alerts.runs >= 24
        assert not alerts, alerts

    @pytest.mark.parametrize("rule", RULES, ids=[rule.name.split(": ")[1] for rule in RULES])
    def test_fires_on_its_attack(self, es: Elasticsearch, shipped: str, rule: Rule) -> None:
        """Alerts on the attack day, every one of them about the attack's account."""
        alerts = run_rule(es, rule, shipped, "attack")
        assert alerts
        email = attack_user(_attack(rule))["email"]
        if rule.threshold is not None:
            assert alerts.users == {email}
            return
        hits = es.search(index=shipped, query={"ids": {"values": sorted(alerts.event_ids)}})
        emails = {hit["_source"]["user"]["email"] for hit in hits.body["hits"]["hits"]}
        assert emails == {email}
        assert len(hits.body["hits"]["hits"]) == len(alerts.event_ids)


class TestNearMisses:
    def test_admin_revocation_is_quiet(self, es: Elasticsearch, shipped: str) -> None:
        """The benign day revokes an administrator's admin scope: the diff's new values no
        longer say admin, user.changes.roles is absent, and the admin rule stays quiet."""
        rule = next(rule for rule in RULES if "user.changes.roles" in rule.query)
        revoked = [
            hit
            for hit in day_events(es, shipped, "benign", 'event.action:"user.updated"')
            if hit["_source"]["appmixer"]["audit"].get("before", {}).get("scope")
            == ["user", "admin"]
        ]
        assert len(revoked) == 1
        assert "changes" not in revoked[0]["_source"]["user"]
        assert not run_rule(es, rule, shipped, "benign")

    def test_two_tokens_without_a_password_change_are_quiet(
        self, es: Elasticsearch, shipped: str
    ) -> None:
        """Two kinds of token from one account within minutes: two distinct actions, but no
        password change, so the token rule does not fire (it counts distinct types)."""
        rule = next(rule for rule in RULES if "password_changed" in rule.query)
        actions = ("access_token_created", "api_token_created")
        assert [TOKEN_ACTION, OTHER_TOKEN_ACTION] == ["Access Token Created", "API Token Created"]
        query = " OR ".join(f'event.action:"{action}"' for action in actions)
        tokens = day_events(es, shipped, "benign", query)
        builders = {hit["_source"]["user"]["email"] for hit in tokens}
        by_builder = [hit for hit in tokens if hit["_source"]["event"]["action"] == actions[1]]
        assert len(by_builder) == 1
        email = by_builder[0]["_source"]["user"]["email"]
        assert {
            h["_source"]["event"]["action"]
            for h in tokens
            if h["_source"]["user"]["email"] == email
        } == set(actions)
        assert email in builders
        assert not run_rule(es, rule, shipped, "benign")


class TestLateEvents:
    @pytest.mark.parametrize("rule", RULES, ids=[rule.name.split(": ")[1] for rule in RULES])
    def test_fires_on_arrival(self, es: Elasticsearch, shipped_late: str, rule: Rule) -> None:
        """Attacks an hour old when shipped: a run now, on event.ingested, raises the alert
        about the attack's account; on @timestamp a look-back under an hour misses it."""
        assert rule.timestamp_override == "event.ingested"
        alerts = run_now(es, rule, shipped_late)
        assert alerts
        email = attack_user(_attack(rule))["email"]
        if rule.threshold is not None:
            assert alerts.users == {email}
        else:
            hits = es.search(
                index=shipped_late, query={"ids": {"values": sorted(alerts.event_ids)}}
            )
            assert {hit["_source"]["user"]["email"] for hit in hits.body["hits"]["hits"]} == {email}
        if rule.lookback() < timedelta(hours=1):
            assert not run_now(es, rule, shipped_late, TIMESTAMP)
