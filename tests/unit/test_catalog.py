"""The event catalog: names, codes and ECS classification of all 28 seed events."""

from __future__ import annotations

import pytest

from agent.normalize.catalog import CATALOG, classify, guess_type, key, lookup, slug, tidy

# The event catalog and its ECS classification (docs/siem.md), written out once more on purpose:
# a change to the catalog must be a change to this table too.
EXPECTED = [
    # code, message, group, type, category, ecs type, outcome
    ("config.updated", "Configuration Updated", "System Configuration", "update",
     ["configuration"], ["change"], "success"),
    ("config.deleted", "Configuration Deleted", "System Configuration", "delete",
     ["configuration"], ["deletion"], "success"),
    ("acl.rule.created", "ACL Rule Created", "Access Control", "create",
     ["iam", "configuration"], ["admin", "creation"], "success"),
    ("acl.rule.updated", "ACL Rule Updated", "Access Control", "update",
     ["iam", "configuration"], ["admin", "change"], "success"),
    ("component.access.assigned", "Component Access Assigned", "Access Control", "update",
     ["iam"], ["admin", "change"], "success"),
    ("flow.created", "Flow Created", "Flow Management", "create",
     ["configuration"], ["creation"], "success"),
    ("flow.updated", "Flow Updated", "Flow Management", "update",
     ["configuration"], ["change"], "success"),
    ("flow.started", "Flow Started", "Flow Management", "update",
     ["configuration"], ["change"], "success"),
    ("flow.stopped", "Flow Stopped", "Flow Management", "update",
     ["configuration"], ["change"], "success"),
    ("flow.deleted", "Flow Deleted", "Flow Management", "delete",
     ["configuration"], ["deletion"], "success"),
    ("flow.cloned", "Flow Cloned", "Flow Management", "create",
     ["configuration"], ["creation"], "success"),
    ("template.created", "Integration Template Created", "Integration Templates", "create",
     ["configuration"], ["creation"], "success"),
    ("template.updated", "Integration Template Updated", "Integration Templates", "update",
     ["configuration"], ["change"], "success"),
    ("template.published", "Integration Template Published", "Integration Templates",
     "update", ["configuration"], ["change"], "success"),
    ("template.published_updated", "Published Integration Template Updated",
     "Integration Templates", "update", ["configuration"], ["change"], "success"),
    ("template.deleted", "Integration Template Deleted", "Integration Templates", "delete",
     ["configuration"], ["deletion"], "success"),
    ("template.test.started", "Integration Template Test Started", "Template Testing",
     "create", ["api"], ["start"], "success"),
    ("template.test.stopped", "Integration Template Test Stopped", "Template Testing",
     "update", ["api"], ["end"], "success"),
    ("template.test.deleted", "Integration Template Test Deleted", "Template Testing",
     "delete", ["api"], ["deletion"], "success"),
    ("connector.installed", "Connector Installed", "Connectors", "create",
     ["package"], ["installation"], "success"),
    ("connector.updated", "Connector Updated", "Connectors", "update",
     ["package"], ["change"], "success"),
    ("connector.uninstalled", "Connector Uninstalled", "Connectors", "delete",
     ["package"], ["deletion"], "success"),
    ("user.created", "User Created", "Users", "create", ["iam"], ["user", "creation"],
     "success"),
    ("user.updated", "User Updated", "Users", "update", ["iam"], ["user", "change"], "success"),
    ("user.deleted", "User Deleted", "Users", "delete", ["iam"], ["user", "deletion"],
     "success"),
    ("user.login", "User Logged In", "Users", "access", ["authentication", "session"],
     ["start"], "success"),
    ("user.login_failed", "Login Failed", "Users", "access", ["authentication"], ["start"],
     "failure"),
    ("user.password_changed", "Password Changed", "Users", "update", ["iam"],
     ["user", "change"], "success"),
]  # fmt: skip
CODES = [row[0] for row in EXPECTED]


def _check(code: str, spelled: str) -> None:
    _, message, group, audit_type, category, ecs_type, outcome = EXPECTED[CODES.index(code)]
    entry = classify(spelled)
    assert entry.catalog is True
    assert (entry.code, entry.message, entry.group) == (code, message, group)
    assert entry.audit_type == audit_type
    assert list(entry.category) == category
    assert list(entry.ecs_type) == ecs_type
    assert (entry.outcome or "success") == outcome


class TestCatalog:
    def test_has_the_seed_events(self) -> None:
        """The catalog holds exactly the 28 events of the seed, each code once."""
        assert [entry.code for entry in CATALOG] == CODES
        assert len(CATALOG) == 28

    @pytest.mark.parametrize("code", CODES)
    def test_by_name(self, code: str) -> None:
        """Every event is found by its human name, with its classification."""
        _check(code, EXPECTED[CODES.index(code)][1])

    @pytest.mark.parametrize("code", CODES)
    def test_by_code(self, code: str) -> None:
        """Every event is found by its code, with its classification."""
        _check(code, code)

    @pytest.mark.parametrize("code", CODES)
    def test_spelling_does_not_matter(self, code: str) -> None:
        """Case, spacing and punctuation of a name or code make no difference."""
        name = EXPECTED[CODES.index(code)][1]
        for spelled in (name.lower(), name.upper(), f"  {name}  ", code.upper().replace(".", "_"),
                        code.replace(".", " "), name.replace(" ", "-")):  # fmt: skip
            _check(code, spelled)

    def test_examples_from_the_issue(self) -> None:
        """The four spellings the issue lists are one event."""
        for spelled in ("flow updated", "Flow Updated", "flow.updated", "FLOW_UPDATED"):
            assert classify(spelled).code == "flow.updated"

    def test_keys_are_unambiguous(self) -> None:
        """No two catalog entries share a matching key, so lookup can never pick the wrong one."""
        owners: dict[str, str] = {}
        for entry in CATALOG:
            for spelled in (entry.code, entry.message):
                assert owners.setdefault(key(spelled), entry.code) == entry.code

    def test_synonyms(self) -> None:
        """Spellings seen in the wild map to their catalog event."""
        assert classify("user.logged_in").code == "user.login"
        assert classify("login.failed").code == "user.login_failed"
        assert classify("configuration.updated").code == "config.updated"
        assert lookup("no such event") is None


class TestUnknownActions:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("Webhook Created", "create"),
            ("API Key Added", "create"),
            ("Plugin Installed", "create"),
            ("Secret Deleted", "delete"),
            ("Member Removed", "delete"),
            ("Plugin Uninstalled", "delete"),
            ("Admin Logged In", "access"),
            ("sso.login", "access"),
            ("userLoggedOut", "access"),
            ("Quota Changed", "update"),
            ("Something Happened", "update"),
        ],
    )
    def test_type_from_the_verb(self, name: str, expected: str) -> None:
        """An uncatalogued action's type is guessed from its verb, update when unsure."""
        assert guess_type(name) == expected
        assert classify(name).audit_type == expected

    def test_kept_outside_the_catalog(self) -> None:
        """An unknown action keeps its name, gets a slug code, no group and catalog false."""
        entry = classify("  Webhook   Secret Rotated ")
        assert entry.catalog is False
        assert entry.message == "Webhook Secret Rotated"
        assert entry.code == "webhook_secret_rotated"
        assert entry.group is None
        assert entry.category == ("configuration",)
        assert entry.ecs_type == ("change",)

    def test_ecs_type_follows_the_guess(self) -> None:
        """The ECS type of an unknown action matches its guessed audit type."""
        assert classify("Widget Created").ecs_type == ("creation",)
        assert classify("Widget Deleted").ecs_type == ("deletion",)
        assert classify("Widget Logged In").ecs_type == ("access",)

    def test_tidy_and_slug(self) -> None:
        """Control characters become spaces, and a code-like name keeps its dots."""
        assert tidy("Flow\tExported\x00 ") == "Flow Exported"
        assert slug("webhook.secret_rotated") == "webhook.secret_rotated"
        assert slug("Ünïcode Thing!") == "ünïcode_thing"
        assert len(tidy("x" * 10_000)) == 256
