"""docs/siem.md: its generated parts match mappings/, the catalog and the rule sources."""

from __future__ import annotations

import pytest

from agent.normalize.catalog import CATALOG
from devtools import siemdoc
from devtools.rules import load_all
from indexer.fields import mapped_fields


class TestSiemDoc:
    def test_committed_file_is_current(self) -> None:
        """Regenerating the field reference, table and rules changes nothing."""
        current = siemdoc.DOC.read_text(encoding="utf-8")
        assert siemdoc.render(current) == current
        assert siemdoc.main(["--check"]) == 0

    def test_every_mapped_field_is_listed(self) -> None:
        """Each field of both targets has its row with its mapped type."""
        section = siemdoc.fields_section()
        for target in ("events", "changes"):
            for field in mapped_fields(target).values():
                assert f"| `{field.name}` | {field.type}" in section

    def test_every_kind_and_rule_is_listed(self) -> None:
        """The 28 catalog kinds and every rule appear."""
        table = siemdoc.categorization_section()
        assert all(f"| `{entry.code}` |" in table for entry in CATALOG)
        assert len(CATALOG) == 28
        rules = siemdoc.rules_section()
        assert all(rule.name in rules and rule.query in rules for rule in load_all())

    def test_stale_section_is_rewritten(self) -> None:
        """Hand edits inside a generated section do not survive regeneration."""
        current = siemdoc.DOC.read_text(encoding="utf-8")
        edited = current.replace("| `organization.id` | keyword", "| `organization.id` | text")
        assert edited != current
        assert siemdoc.render(edited) == current

    def test_missing_section_is_an_error(self) -> None:
        """A document without one of the markers is refused, naming the section."""
        with pytest.raises(KeyError, match="rules"):
            siemdoc.render(
                "<!-- BEGIN GENERATED: fields -->\n<!-- END GENERATED: fields -->\n"
                "<!-- BEGIN GENERATED: categorization -->\n"
                "<!-- END GENERATED: categorization -->\n"
            )
