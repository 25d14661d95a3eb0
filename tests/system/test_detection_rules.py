"""The detection rules on a real node: each fires on its attack and stays quiet on a benign day.

The agent ships a benign day and an attack day (``devtools.scenarios``) with ``run --once``.
Each rule then runs as the detection engine would run it over each day: one search every
``interval`` looking back ``from``, the Lucene query as ``query_string``, and for threshold
rules the composite aggregation with the engine's count and cardinality conditions. The
rules read ``logs-appmixer.audit-*``; here the pattern is narrowed to this test's namespace so
other tests' data on the shared node cannot count.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from devtools.rules import (
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
    Attack,
    Scenario,
    attack_user,
    write_day,
)
from indexer.setup import install
from tests.esnode import remove_targets
from tests.system.conftest import Agent, parse_summary, targets

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
    namespace = "rules" + datetime.now(UTC).strftime("%H%M%S%f")
    report = install(es, *targets(namespace))
    assert report.ok, report.lines()
    work = tmp_path_factory.mktemp("rules")
    logs = work / "logs"
    logs.mkdir()
    written = 0
    for scenario in DAYS:
        with (logs / f"{scenario}.ndjson").open("wb") as out:
            written += write_day(out, scenario)
    agent = Agent(
        [str(logs / "*.ndjson")], es_url=es_url, namespace=namespace,
        state_dir=work / "state", once=True,
    )  # fmt: skip
    assert agent.wait(600) == 0, agent.tail()
    assert parse_summary(agent.stdout())["shipped"] == written
    events, _changes = targets(namespace)
    es.indices.refresh(index=events)
    yield events
    remove_targets(es, namespace)


def run_rule(es: Elasticsearch, rule: Rule, target: str, scenario: Scenario) -> Alerts:
    """Every run of the rule while the day's data passes, as the detection engine runs it."""
    assert any(fnmatch.fnmatch(target, pattern) for pattern in rule.index)
    start = datetime.fromtimestamp(DAYS[scenario] / 1000, UTC)
    end = start + timedelta(milliseconds=DAY_MS)
    # Both days sit in one index, one after the other: a run sees only its own day.
    windows = [(max(a, start), min(b, end)) for a, b in executions(rule, start, end)]
    alerts = Alerts(runs=len(windows))
    for chunk in range(0, len(windows), 100):
        searches: list[dict[str, Any]] = []
        for window in windows[chunk : chunk + 100]:
            searches += [{"index": target}, execution_search(rule, window)]
        for response in es.msearch(searches=searches).body["responses"]:
            assert "error" not in response, response
            if rule.threshold is None:
                alerts.event_ids |= {hit["_id"] for hit in response["hits"]["hits"]}
            else:
                for bucket in threshold_alerts(rule, response):
                    alerts.users.add(bucket["key"]["user.email"])
    return alerts


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
