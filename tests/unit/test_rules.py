"""The detection rules' sources, their import file, and the searches built for the engine."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from agent.normalize import Normalized, NormalizeOptions, Normalizer
from cli import cli
from devtools import rules as R
from devtools.scenarios import ATTACKS, TOKEN_ACTION, iter_day, write_day

RULES = R.load_all()
T0 = datetime(2026, 11, 24, tzinfo=UTC)
# Top-level keys of Kibana's rule import schema (RuleToImport: base, type-specific and
# response fields) that the import file may carry.
IMPORT_KEYS = {
    "rule_id", "name", "description", "type", "language", "query", "index", "from", "to",
    "interval", "threshold", "risk_score", "severity", "enabled", "version", "author",
    "license", "tags", "false_positives", "references", "threat", "note", "required_fields",
    "max_signals", "exceptions_list", "actions", "timestamp_override",
}  # fmt: skip


class TestSources:
    def test_six_rules(self) -> None:
        """The six rules load, with unique ids, on the audit event data streams only."""
        assert len(RULES) == 6
        assert all(rule.index == [R.AUDIT_INDEX] for rule in RULES)

    def test_import_file_is_current(self) -> None:
        """The committed NDJSON is what the sources render to."""
        assert R.IMPORT_FILE.read_text(encoding="utf-8") == R.render(RULES)
        assert R.main(["--check"]) == 0

    def test_import_lines(self) -> None:
        """One JSON object a line, keys from the import schema, types the engine takes."""
        lines = R.IMPORT_FILE.read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(RULES)
        for line in lines:
            rule = orjson.loads(line)
            assert set(rule) <= IMPORT_KEYS
            assert rule["language"] == "lucene"
            assert rule["type"] in {"query", "threshold"}
            assert isinstance(rule["version"], int)
            assert rule["version"] >= 1
            assert all({"name", "type", "ecs"} == set(field) for field in rule["required_fields"])
            assert rule["timestamp_override"] == "event.ingested"

    def test_unmapped_field_is_refused(self, tmp_path: Path) -> None:
        """A query naming a field mappings/ does not map is an error naming the file."""
        source = next(R.SOURCES.glob("impact_*.toml")).read_text(encoding="utf-8")
        bad = tmp_path / "bad.toml"
        bad.write_text(source.replace('event.action:"flow.deleted"', "flow.owner:bob"))
        with pytest.raises(R.RuleError, match=r"bad\.toml: flow\.owner is not mapped"):
            R.load(bad)

    def test_threshold_section_needs_threshold_type(self, tmp_path: Path) -> None:
        """A query rule with a threshold table is refused, not silently imported."""
        source = next(R.SOURCES.glob("impact_*.toml")).read_text(encoding="utf-8")
        bad = tmp_path / "bad.toml"
        bad.write_text(source.replace('type = "threshold"', 'type = "query"'))
        with pytest.raises(R.RuleError, match="threshold"):
            R.load(bad)


class TestQueryFields:
    def test_fields_in_order_without_values(self) -> None:
        """Field names before colons, not text inside quoted values or escaped colons."""
        query = 'a.b:"x:y" AND (c:1 OR d.e:*\\"admin\\"*) AND NOT a.b:z'
        assert R.query_fields(query) == ["a.b", "c", "d.e"]

    def test_flattened_key_requires_its_field(self, tmp_path: Path) -> None:
        """A key inside the flattened diff requires the flattened field itself."""
        source = next(R.SOURCES.glob("impact_*.toml")).read_text(encoding="utf-8")
        keyed = tmp_path / "keyed.toml"
        keyed.write_text(
            source.replace('event.action:"flow.deleted"', "appmixer.audit.changes.new:x")
        )
        entry = {"name": "appmixer.audit.changes", "type": "flattened", "ecs": False}
        assert entry in R.required_fields(R.load(keyed))

    def test_required_fields_say_whether_ecs_defines_them(self) -> None:
        """Kibana before 8.15 refuses a required field without ``ecs``: ours are false."""
        admin = next(rule for rule in RULES if "user.changes.roles" in rule.query)
        assert R.required_fields(admin) == [
            {"name": "event.action", "type": "keyword", "ecs": True},
            {"name": "user.changes.roles", "type": "keyword", "ecs": True},
        ]
        token = next(rule for rule in RULES if "password_changed" in rule.query)
        assert {"name": "appmixer.audit.type", "type": "keyword", "ecs": False} in (
            R.required_fields(token)
        )


class TestEngineSearches:
    def test_windows(self) -> None:
        """One run per interval, each looking back ``from``, until the span is read."""
        rule = next(rule for rule in RULES if rule.interval == "5m" and rule.from_ == "now-15m")
        windows = list(R.executions(rule, T0, T0 + timedelta(hours=1)))
        assert windows[0] == (T0 - timedelta(minutes=10), T0 + timedelta(minutes=5))
        assert windows[-1][0] < T0 + timedelta(hours=1) <= windows[-1][1]
        assert all(b - a == timedelta(minutes=15) for a, b in windows)

    def test_query_rule_search(self) -> None:
        """A query rule: query_string with analyze_wildcard, range on event.ingested, or on
        @timestamp for a document without it (the engine's fallback)."""
        rule = next(rule for rule in RULES if rule.type == "query")
        body = R.execution_search(rule, (T0, T0 + timedelta(minutes=6)))
        query_string, in_window = body["query"]["bool"]["filter"]
        ingested, fallback = in_window["bool"]["should"]
        assert ingested["range"]["event.ingested"]["gte"] == "2026-11-24T00:00:00.000Z"
        without, by_time = fallback["bool"]["filter"]
        assert without == {"bool": {"must_not": [{"exists": {"field": "event.ingested"}}]}}
        assert by_time["range"]["@timestamp"]["lte"] == "2026-11-24T00:06:00.000Z"
        assert body["sort"] == [{"event.ingested": "asc"}]
        body = R.execution_search(rule, (T0, T0 + timedelta(minutes=6)), "@timestamp")
        query_string, time_range = body["query"]["bool"]["filter"]
        assert query_string == {"query_string": {"query": rule.query, "analyze_wildcard": True}}
        assert time_range["range"]["@timestamp"]["gte"] == "2026-11-24T00:00:00.000Z"
        assert time_range["range"]["@timestamp"]["lte"] == "2026-11-24T00:06:00.000Z"
        assert "aggs" not in body

    def test_threshold_search_and_selection(self) -> None:
        """A threshold rule groups by its fields; buckets below count or cardinality drop."""
        rule = next(rule for rule in RULES if rule.threshold and rule.threshold.cardinality)
        body = R.execution_search(rule, (T0, T0 + timedelta(hours=1)))
        composite = body["aggs"]["thresholdTerms"]
        assert composite["composite"]["sources"] == [
            {"user.email": {"terms": {"field": "user.email"}}}
        ]
        assert "cardinality_count" in composite["aggs"]
        assert body["size"] == 0
        assert rule.threshold is not None
        needed = rule.threshold.cardinality[0].value
        buckets = [
            {"key": {"user.email": "a"}, "doc_count": 9, "cardinality_count": {"value": needed}},
            {"key": {"user.email": "b"}, "doc_count": 9, "cardinality_count": {"value": 1}},
            {"key": {"user.email": "c"}, "doc_count": 0, "cardinality_count": {"value": 9}},
        ]
        response = {"aggregations": {"thresholdTerms": {"buckets": buckets}}}
        assert [b["key"]["user.email"] for b in R.threshold_alerts(rule, response)] == ["a"]


class TestScenarios:
    def test_days_are_repeatable(self) -> None:
        """The same scenario and seed give the same bytes."""
        first, second = io.BytesIO(), io.BytesIO()
        write_day(first, "attack", 3)
        write_day(second, "attack", 3)
        assert first.getvalue() == second.getvalue()

    def test_simulate_writes_a_day(self) -> None:
        """``simulate --scenario`` writes the day; mixing it with --events is a usage error."""
        expected = io.BytesIO()
        write_day(expected, "benign", 5)
        result = CliRunner().invoke(cli, ["simulate", "--scenario", "benign", "--seed", "5"])
        assert result.exit_code == 0
        assert result.stdout_bytes == expected.getvalue()
        for args in (["--scenario", "attack", "-n", "3"], []):
            result = CliRunner().invoke(cli, ["simulate", *args])
            assert result.exit_code == 2
            assert "--scenario" in result.output

    def test_days_normalize_in_time_order(self) -> None:
        """Every line of both days is an audit event of its own day, in time order."""
        normalizer = Normalizer(NormalizeOptions(host_name="scenario"))
        for scenario, day in (("benign", "2026-11-23"), ("attack", "2026-11-24")):
            times = []
            for record in iter_day(scenario):  # type: ignore[arg-type]
                outcome = normalizer(orjson.dumps(record))
                assert isinstance(outcome, Normalized), outcome
                times.append(outcome.event["@timestamp"])
            assert times == sorted(times)
            assert {time[:10] for time in times} == {day}

    def test_token_creation_is_outside_the_catalog(self) -> None:
        """Access token creation normalizes as an uncatalogued create, as documented."""
        normalizer = Normalizer(NormalizeOptions(host_name="scenario"))
        record = next(r for r in iter_day("benign") if r.get("action") == TOKEN_ACTION)
        outcome = normalizer(orjson.dumps(record))
        assert isinstance(outcome, Normalized)
        event, audit = outcome.event["event"], outcome.event["appmixer"]["audit"]
        assert (event["action"], audit["type"], audit["catalog"]) == (
            "access_token_created",
            "create",
            False,
        )
        assert audit["after"]["token"] == "[REDACTED]"

    def test_attacks_only_on_the_attack_day(self) -> None:
        """The admin grant, the audit switch-off and the foreign tenant are the attack day's."""

        def marks(scenario: str) -> set[str]:
            found = set()
            for record in iter_day(scenario):  # type: ignore[arg-type]
                inner = record.get("audit", record)
                if inner.get("after") == {"scope": ["user", "admin"]}:
                    found.add("admin-granted")
                if inner.get("entity", {}).get("id") == "AUDIT_LOG_ENABLED":
                    found.add("audit-logging-changed")
            return found

        assert marks("benign") == set()
        assert marks("attack") == {"admin-granted", "audit-logging-changed"}
        assert len(ATTACKS) == 6
