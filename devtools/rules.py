"""The detection rules: readable TOML sources, the detection engine's import file, and the
searches the engine runs for them.

``detection-rules/rules/*.toml`` are the sources, laid out as in Elastic's detection-rules
repository (``[metadata]`` and ``[rule]``). ``python -m devtools.rules`` renders them into
``detection-rules/appmixer-audit-rules.ndjson``, the file Kibana's rule import
(``POST /api/detection_engine/rules/_import``) takes: one rule a line, with defaults filled
in and ``required_fields`` derived from the fields each query names, typed from
``mappings/``. ``--check`` says whether the committed file is current.

``execution_search`` builds the request the detection engine sends for one run of a rule:
the Lucene query as ``query_string`` (with the engine's ``analyze_wildcard``), a time range
from the rule's ``from`` to the run's time on the rule's ``timestamp_override``
(``event.ingested``, the ship time, so a late event is still read; a document without it is
read by ``@timestamp``, the engine's fallback) and, for a threshold rule, the composite
aggregation over the threshold fields with the cardinality sub-aggregation.
``threshold_alerts`` applies the engine's bucket selectors (count at least ``value``,
cardinality at least its ``value``) to a response.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.clock import utc_iso
from devtools.generated import write_or_check
from indexer.fields import Field as MappedField
from indexer.fields import mapped_fields

ROOT = Path(__file__).resolve().parents[1] / "detection-rules"
SOURCES = ROOT / "rules"
IMPORT_FILE = ROOT / "appmixer-audit-rules.ndjson"
AUDIT_INDEX = "logs-appmixer.audit-*"
TIMESTAMP = "@timestamp"
INGESTED = "event.ingested"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cardinality(_Strict):
    field: str
    value: Annotated[int, Field(ge=1)]


class Threshold(_Strict):
    field: list[str] = Field(min_length=1)
    value: Annotated[int, Field(ge=1)]
    cardinality: list[Cardinality] = Field(default_factory=list, max_length=1)


class MitreRef(_Strict):
    id: str
    name: str
    reference: str


class Technique(MitreRef):
    subtechnique: list[MitreRef] = Field(default_factory=list)


class Threat(_Strict):
    framework: Literal["MITRE ATT&CK"]
    tactic: MitreRef
    technique: list[Technique] = Field(default_factory=list)


Duration = Annotated[str, Field(pattern=r"^\d+[smh]$")]


class Rule(_Strict):
    """The ``[rule]`` table of a source: the fields of Kibana's rule schema we use."""

    author: list[str]
    description: str
    false_positives: list[str] = Field(default_factory=list)
    from_: Annotated[str, Field(alias="from", pattern=r"^now-\d+[smh]$")]
    index: list[str] = Field(min_length=1)
    interval: Duration
    language: Literal["lucene"]
    license: str
    name: str
    note: str = ""
    references: list[str] = Field(default_factory=list)
    risk_score: Annotated[int, Field(ge=0, le=100)]
    rule_id: Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]
    severity: Literal["low", "medium", "high", "critical"]
    tags: list[str]
    type: Literal["query", "threshold"]
    query: str
    threshold: Threshold | None = None
    threat: list[Threat] = Field(default_factory=list)
    # The engine's time field; ship time, so events that arrive late are still evaluated.
    timestamp_override: Literal["event.ingested"]

    def lookback(self) -> timedelta:
        """How far back each run looks: the rule's ``from``."""
        return _duration(self.from_.removeprefix("now-"))

    def every(self) -> timedelta:
        return _duration(self.interval)


class Metadata(_Strict):
    creation_date: str
    maturity: Literal["development", "production"]
    updated_date: str


class RuleSource(_Strict):
    metadata: Metadata
    rule: Rule


def _duration(text: str) -> timedelta:
    amount, unit = int(text[:-1]), text[-1]
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours"}[unit]: amount})


class RuleError(ValueError):
    """A rule source that cannot become a rule; the message names the file."""


def load(path: Path) -> Rule:
    """One source file as a validated rule (query trimmed, as TOML keeps its last newline)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        source = RuleSource.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError) as error:
        raise RuleError(f"{path.name}: {error}") from None
    rule = source.rule.model_copy(update={"query": source.rule.query.strip()})
    if (rule.type == "threshold") != (rule.threshold is not None):
        raise RuleError(f"{path.name}: a threshold section goes with type threshold, only")
    required_fields(rule, where=path.name)  # every named field must be mapped
    return rule


def load_all(folder: Path = SOURCES) -> list[Rule]:
    """Every rule, in file name order; rule ids and names unique."""
    rules = [load(path) for path in sorted(folder.glob("*.toml"))]
    for attribute in ("rule_id", "name"):
        values = [getattr(rule, attribute) for rule in rules]
        if len(set(values)) != len(values):
            raise RuleError(f"two rules share a {attribute}")
    return rules


_FIELD = re.compile(r"(?<![\w.\\])([A-Za-z@_][\w.@]*):")


def query_fields(query: str) -> list[str]:
    """The field names a Lucene query names (``name:``), in order, each once."""
    quoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)  # field-like text inside values
    found: list[str] = []
    for name in _FIELD.findall(quoted):
        if name not in found:
            found.append(name)
    return found


def _mapped(name: str, fields: Mapping[str, MappedField]) -> MappedField | None:
    """The mapped field behind a name: itself, or the flattened field it is a key of."""
    if name in fields:
        return fields[name]
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        parent = fields.get(".".join(parts[:end]))
        if parent is not None and parent.type == "flattened":
            return parent
    return None


def is_ecs(name: str) -> bool:
    """Whether a mapped field is an ECS field: all but ours (``appmixer.*``) and Filebeat's
    ``log.offset`` (``tests/unit/test_ecs_conformance.py`` holds the mappings to that)."""
    return not name.startswith("appmixer.") and name != "log.offset"


def required_fields(rule: Rule, *, where: str = "") -> list[dict[str, Any]]:
    """``required_fields`` of the import file: each field the rule reads, with its type and
    whether ECS defines it (``ecs``: Kibana before 8.15 refuses an entry without it)."""
    names = query_fields(rule.query)
    if rule.threshold is not None:
        names += rule.threshold.field + [c.field for c in rule.threshold.cardinality]
    fields = mapped_fields("events")
    required: dict[str, str] = {}
    for name in names:
        mapped = _mapped(name, fields)
        if mapped is None:
            raise RuleError(f"{where or rule.name}: {name} is not mapped in mappings/")
        required.setdefault(mapped.name, mapped.type)
    return [{"name": name, "type": kind, "ecs": is_ecs(name)} for name, kind in required.items()]


def to_import(rule: Rule) -> dict[str, Any]:
    """The rule as the detection engine's import takes it (``RuleToImport`` with version)."""
    body: dict[str, Any] = {
        "rule_id": rule.rule_id,
        "name": rule.name,
        "description": rule.description.strip(),
        "type": rule.type,
        "language": rule.language,
        "query": rule.query,
        "index": rule.index,
        "from": rule.from_,
        "to": "now",
        "interval": rule.interval,
        "timestamp_override": rule.timestamp_override,
    }
    if rule.threshold is not None:
        body["threshold"] = rule.threshold.model_dump()
    body |= {
        "risk_score": rule.risk_score,
        "severity": rule.severity,
        "enabled": False,
        "version": 1,
        "author": rule.author,
        "license": rule.license,
        "tags": rule.tags,
        "false_positives": rule.false_positives,
        "references": rule.references,
        "threat": [threat.model_dump() for threat in rule.threat],
        "note": rule.note.strip(),
        "required_fields": required_fields(rule),
        "max_signals": 100,
        "exceptions_list": [],
        "actions": [],
    }
    return body


def render(rules: list[Rule]) -> str:
    """The import file's text: one rule a line, keys in a fixed order."""
    return "".join(orjson.dumps(to_import(rule)).decode() + "\n" for rule in rules)


# --- what the detection engine sends, run by run


def executions(rule: Rule, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The (from, to) windows of the runs a rule makes while the data's time passes from
    ``start`` to ``end``: one run every ``interval``, each looking back ``from``, the last
    one after ``end`` so the end of the span is read too."""
    step, back = rule.every(), rule.lookback()
    run = start + step
    while run - back < end:
        yield run - back, run
        run += step


def _time(moment: datetime) -> str:
    return utc_iso(moment)


def _range(field: str, window: tuple[datetime, datetime]) -> dict[str, Any]:
    bounds = {
        "gte": _time(window[0]),
        "lte": _time(window[1]),
        "format": "strict_date_optional_time",
    }
    return {"range": {field: bounds}}


def execution_search(
    rule: Rule, window: tuple[datetime, datetime], time_field: str | None = None
) -> dict[str, Any]:
    """The search body of one run over ``window``, on the rule's time field: its
    ``timestamp_override``, or for documents without that field ``@timestamp`` (the engine's
    fallback). ``time_field`` replaces it (``@timestamp`` replays past days as if each event
    had been shipped as it happened)."""
    field = time_field or rule.timestamp_override
    if field == TIMESTAMP:
        in_window = _range(TIMESTAMP, window)
    else:
        without = {"bool": {"must_not": [{"exists": {"field": field}}]}}
        fallback = {"bool": {"filter": [without, _range(TIMESTAMP, window)]}}
        in_window = {
            "bool": {"should": [_range(field, window), fallback], "minimum_should_match": 1}
        }
    query = {
        "bool": {
            "filter": [
                {"query_string": {"query": rule.query, "analyze_wildcard": True}},
                in_window,
            ]
        }
    }
    if rule.threshold is None:
        return {"query": query, "size": 100, "sort": [{field: "asc"}]}
    aggs: dict[str, Any] = {"max_timestamp": {"max": {"field": TIMESTAMP}}}
    if rule.threshold.cardinality:
        field = rule.threshold.cardinality[0].field
        aggs["cardinality_count"] = {"cardinality": {"field": field}}
    sources = [{name: {"terms": {"field": name}}} for name in rule.threshold.field]
    composite = {"composite": {"sources": sources, "size": 10000}, "aggs": aggs}
    return {"query": query, "size": 0, "aggs": {"thresholdTerms": composite}}


def threshold_alerts(rule: Rule, response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The buckets of a threshold run that become alerts (the engine's bucket selectors)."""
    assert rule.threshold is not None
    alerts = []
    for bucket in response["aggregations"]["thresholdTerms"]["buckets"]:
        if bucket["doc_count"] < rule.threshold.value:
            continue
        if rule.threshold.cardinality:
            wanted = rule.threshold.cardinality[0].value
            if bucket["cardinality_count"]["value"] < wanted:
                continue
        alerts.append(bucket)
    return alerts


def main(argv: list[str] | None = None) -> int:
    """Render the import file, or with ``--check`` report whether it is current."""
    args = sys.argv[1:] if argv is None else argv
    try:
        text = render(load_all())
    except RuleError as error:
        print(f"detection rules: {error}", file=sys.stderr)
        return 1
    summary = f" ({text.count(chr(10))} rules)"
    return write_or_check(IMPORT_FILE, text, args, "python -m devtools.rules", summary)


if __name__ == "__main__":
    sys.exit(main())
