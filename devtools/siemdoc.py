"""The generated parts of ``docs/siem.md``: field reference, categorization table, rules.

The prose of ``docs/siem.md`` is written by hand; the parts between
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->`` come from
``mappings/`` (fields and types, through ``indexer.fields``), the catalog
(``agent.normalize.catalog``) and the rule sources (``devtools.rules``), so nothing is
written twice. ``python -m devtools.siemdoc`` rewrites them; ``--check`` says whether the
committed file is current (a test runs it).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import mappings
from agent.normalize.catalog import CATALOG, ecs_type_for
from devtools.generated import write_or_check
from devtools.rules import Rule, is_ecs, load_all
from indexer.fields import INDEX_TEMPLATES, Target, mapped_fields, walk

DOC = Path(__file__).resolve().parents[1] / "docs" / "siem.md"
_SECTION = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)
TARGET_NAMES: dict[Target, str] = {
    "events": "`logs-appmixer.audit-*` (events)",
    "changes": "`logs-appmixer.audit_changes-*` (changes)",
}


def _defined_in(target: Target) -> dict[str, str]:
    """Which component template gives each field its mapping (the last one to name it)."""
    found: dict[str, str] = {}
    available = set(mappings.names("component"))
    for component in mappings.load("index", INDEX_TEMPLATES[target])["composed_of"]:
        if component not in available:
            continue
        body = mappings.load("component", component)["template"].get("mappings", {})
        for leaf in walk(body.get("properties", {})):
            found[leaf.name] = component
    return found


def _kind(name: str) -> str:
    if name == "log.offset":
        return "Filebeat convention"
    return "ECS" if is_ecs(name) else "custom"


def fields_section() -> str:
    """One table per target: every mapped field, its type, multi-fields, origin."""
    parts = []
    for target in ("events", "changes"):
        defined = _defined_in(target)
        rows = [
            "| field | type | multi-fields | ECS or custom | mapped in |",
            "|---|---|---|---|---|",
        ]
        for field in sorted(mapped_fields(target).values(), key=lambda f: f.name):
            kind = field.type if field.indexed else f"{field.type}, not indexed"
            subs = ", ".join(f"`.{suffix}` {sub}" for suffix, sub in field.subfields)
            component = defined.get(field.name, "")
            rows.append(f"| `{field.name}` | {kind} | {subs} | {_kind(field.name)} | {component} |")
        parts.append(f"{TARGET_NAMES[target]}:\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def categorization_section() -> str:
    """The catalog's 28 kinds with their ECS categorization, and the unknown-action rule."""
    rows = [
        "| action (`message`) | `event.action` | `appmixer.audit.type` | `event.category` "
        "| `event.type` | `event.outcome` |",
        "|---|---|---|---|---|---|",
    ]
    for entry in CATALOG:
        rows.append(
            f"| {entry.message} | `{entry.code}` | {entry.audit_type} "
            f"| {', '.join(entry.category)} | {', '.join(entry.ecs_type)} "
            f"| {entry.outcome or 'success (or as logged)'} |"
        )
    guessed = ", ".join(
        f"{audit_type} → {ecs_type_for(audit_type)[0]}"
        for audit_type in ("create", "update", "delete", "access")
    )
    rows.append(
        "| anything else | the name as a slug | guessed from the verb "
        f"| configuration | {guessed} | as logged |"
    )
    return f"{len(CATALOG)} kinds in the catalog, then the rule for actions outside it:\n\n" + (
        "\n".join(rows) + "\n"
    )


def _shape(rule: Rule) -> str:
    if rule.threshold is None:
        return "query: every matching event"
    shape = f"threshold: ≥ {rule.threshold.value} per {', '.join(rule.threshold.field)}"
    for condition in rule.threshold.cardinality:
        shape += f", ≥ {condition.value} distinct {condition.field}"
    return shape


def rules_section() -> str:
    """Each rule: what it detects, its shape, window and query."""
    parts = []
    for rule in load_all():
        tactic = ", ".join(
            f"{t.tactic.name} / {', '.join(tech.id for tech in t.technique)}" for t in rule.threat
        )
        description = " ".join(rule.description.split())
        parts.append(
            f"#### {rule.name}\n\n{description}\n\n"
            f"- {_shape(rule)}; runs every {rule.interval}, looking back "
            f"{rule.from_.removeprefix('now-')}\n"
            f"- severity {rule.severity} (risk {rule.risk_score}); MITRE ATT&CK: {tactic}\n"
            f"- `rule_id` `{rule.rule_id}`\n\n"
            f"```\n{rule.query}\n```\n"
        )
    return "\n".join(parts)


SECTIONS: dict[str, Callable[[], str]] = {
    "fields": fields_section,
    "categorization": categorization_section,
    "rules": rules_section,
}


def render(text: str) -> str:
    """``text`` with every generated section rewritten; an unknown section name is an error."""

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in SECTIONS:
            raise KeyError(f"docs/siem.md names an unknown generated section: {name}")
        return f"{match.group(1)}{SECTIONS[name]()}{match.group(4)}"

    rendered = _SECTION.sub(fill, text)
    missing = set(SECTIONS) - {m.group("name") for m in _SECTION.finditer(text)}
    if missing:
        raise KeyError(f"docs/siem.md lacks generated sections: {', '.join(sorted(missing))}")
    return rendered


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return write_or_check(
        DOC, render(DOC.read_text(encoding="utf-8")), args, "python -m devtools.siemdoc"
    )


if __name__ == "__main__":
    sys.exit(main())
