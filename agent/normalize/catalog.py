"""The 28 events of Appmixer's Audit Logs page and their ECS classification; a verb guess
for anything newer.

Names and codes are matched on their letters and digits only, lowercased, so "Flow Updated",
"flow updated", "flow.updated" and "FLOW_UPDATED" are one event. The ECS categories and types
follow Elastic's Okta, GitHub and Slack audit integrations (docs/siem.md, "Categorization").
An action outside the catalog (a newer Appmixer) is kept: its type comes from its verb and
``catalog`` is false, so it can be found and added here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """How one action is named, classified and grouped."""

    code: str
    message: str
    group: str | None
    audit_type: str  # create / update / delete / access
    category: tuple[str, ...]
    ecs_type: tuple[str, ...]
    outcome: str | None = None  # forced outcome ("Login Failed" is a failure by definition)
    catalog: bool = True


_CONFIG = ("configuration",)
_ACL = ("iam", "configuration")
_API = ("api",)
_PACKAGE = ("package",)
_IAM = ("iam",)

_Row = CatalogEntry  # one row of the table below

CATALOG: tuple[CatalogEntry, ...] = (
    _Row("config.updated", "Configuration Updated", "System Configuration", "update",
         _CONFIG, ("change",)),
    _Row("config.deleted", "Configuration Deleted", "System Configuration", "delete",
         _CONFIG, ("deletion",)),
    _Row("acl.rule.created", "ACL Rule Created", "Access Control", "create",
         _ACL, ("admin", "creation")),
    _Row("acl.rule.updated", "ACL Rule Updated", "Access Control", "update",
         _ACL, ("admin", "change")),
    _Row("component.access.assigned", "Component Access Assigned", "Access Control",
         "update", _IAM, ("admin", "change")),
    _Row("flow.created", "Flow Created", "Flow Management", "create", _CONFIG, ("creation",)),
    _Row("flow.updated", "Flow Updated", "Flow Management", "update", _CONFIG, ("change",)),
    _Row("flow.started", "Flow Started", "Flow Management", "update", _CONFIG, ("change",)),
    _Row("flow.stopped", "Flow Stopped", "Flow Management", "update", _CONFIG, ("change",)),
    _Row("flow.deleted", "Flow Deleted", "Flow Management", "delete", _CONFIG, ("deletion",)),
    _Row("flow.cloned", "Flow Cloned", "Flow Management", "create", _CONFIG, ("creation",)),
    _Row("template.created", "Integration Template Created", "Integration Templates",
         "create", _CONFIG, ("creation",)),
    _Row("template.updated", "Integration Template Updated", "Integration Templates",
         "update", _CONFIG, ("change",)),
    _Row("template.published", "Integration Template Published", "Integration Templates",
         "update", _CONFIG, ("change",)),
    _Row("template.published_updated", "Published Integration Template Updated",
         "Integration Templates", "update", _CONFIG, ("change",)),
    _Row("template.deleted", "Integration Template Deleted", "Integration Templates",
         "delete", _CONFIG, ("deletion",)),
    _Row("template.test.started", "Integration Template Test Started", "Template Testing",
         "create", _API, ("start",)),
    _Row("template.test.stopped", "Integration Template Test Stopped", "Template Testing",
         "update", _API, ("end",)),
    _Row("template.test.deleted", "Integration Template Test Deleted", "Template Testing",
         "delete", _API, ("deletion",)),
    _Row("connector.installed", "Connector Installed", "Connectors", "create",
         _PACKAGE, ("installation",)),
    _Row("connector.updated", "Connector Updated", "Connectors", "update",
         _PACKAGE, ("change",)),
    _Row("connector.uninstalled", "Connector Uninstalled", "Connectors", "delete",
         _PACKAGE, ("deletion",)),
    _Row("user.created", "User Created", "Users", "create", _IAM, ("user", "creation")),
    _Row("user.updated", "User Updated", "Users", "update", _IAM, ("user", "change")),
    _Row("user.deleted", "User Deleted", "Users", "delete", _IAM, ("user", "deletion")),
    _Row("user.login", "User Logged In", "Users", "access",
         ("authentication", "session"), ("start",)),
    _Row("user.login_failed", "Login Failed", "Users", "access",
         ("authentication",), ("start",), outcome="failure"),
    _Row("user.password_changed", "Password Changed", "Users", "update",
         _IAM, ("user", "change")),
)  # fmt: skip

# Spellings seen in the wild besides the name and the code.
_SYNONYMS: dict[str, str] = {
    "user.logged_in": "user.login",
    "login": "user.login",
    "user.login.failed": "user.login_failed",
    "login.failed": "user.login_failed",
    "user.password.changed": "user.password_changed",
    "template.published.updated": "template.published_updated",
    "configuration.updated": "config.updated",
    "configuration.deleted": "config.deleted",
    "acl.created": "acl.rule.created",
    "acl.updated": "acl.rule.updated",
}

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"\s+")
_SLUG_JUNK = re.compile(r"[^\w.]+")  # letters of any script stay
MAX_ACTION_CHARS = 256


def key(name: str) -> str:
    """The matching key: letters and digits only, lowercased."""
    return _NOT_ALNUM.sub("", name.lower())


def _index() -> dict[str, CatalogEntry]:
    by_code = {entry.code: entry for entry in CATALOG}
    index: dict[str, CatalogEntry] = {}
    for entry in CATALOG:
        index[key(entry.code)] = entry
        index[key(entry.message)] = entry
    for synonym, code in _SYNONYMS.items():
        index.setdefault(key(synonym), by_code[code])
    return index


_INDEX: Final = _index()
_ECS_TYPE: Final = {
    "create": "creation",
    "update": "change",
    "delete": "deletion",
    "access": "access",
}
_VERBS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "access",
        re.compile(
            r"\blog(?:ged|s)?[\s_.-]*(?:in|out)\b|\blog(?:in|out)s?\b"
            r"|\bsign(?:ed)?[\s_.-]*(?:in|out)\b|\b(?:accessed|viewed|downloaded|exported)\b"
        ),
    ),
    (
        "delete",
        re.compile(
            r"\b(?:deleted?|removed?|uninstalled?|revoked?|purged?|destroyed?|unassigned?)\b"
        ),
    ),
    (
        "create",
        re.compile(
            r"\b(?:created?|added?|installed?|cloned?|invited?|registered?|imported?"
            r"|generated?|new)\b"
        ),
    ),
)


def tidy(name: str) -> str:
    """The action as given, with whitespace collapsed and control characters gone."""
    printable = "".join(ch if ch.isprintable() else " " for ch in name)
    tidied = _SPACES.sub(" ", printable).strip()
    return tidied[:MAX_ACTION_CHARS]


def slug(name: str) -> str:
    """A code-like ``event.action`` for an unknown action: "Webhook Rotated" -> webhook_rotated."""
    return _SLUG_JUNK.sub("_", name.lower()).strip("._")[:MAX_ACTION_CHARS]


def guess_type(name: str) -> str:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower().replace("_", " ")
    for audit_type, pattern in _VERBS:
        if pattern.search(words):
            return audit_type
    return "update"


def lookup(name: str) -> CatalogEntry | None:
    """The catalog entry for a name or code, whatever its case, spacing or punctuation."""
    return _INDEX.get(key(name))


_SEEN: Final[
    dict[str, CatalogEntry]
] = {}  # spelling as written -> entry: services repeat their spellings
_SEEN_LIMIT: Final = 4096


def classify(name: str) -> CatalogEntry:
    """The catalog entry, or an uncatalogued one with a type guessed from the verb."""
    entry = _SEEN.get(name)
    if entry is None:
        entry = _classify(name)
        if len(name) <= MAX_ACTION_CHARS:
            if len(_SEEN) >= _SEEN_LIMIT:
                _SEEN.clear()
            _SEEN[name] = entry
    return entry


def _classify(name: str) -> CatalogEntry:
    entry = _INDEX.get(key(name))
    if entry is not None:
        return entry
    shown = tidy(name)
    audit_type = guess_type(shown)
    return CatalogEntry(
        code=slug(shown) or "unknown",
        message=shown,
        group=None,
        audit_type=audit_type,
        category=_CONFIG,
        ecs_type=(_ECS_TYPE[audit_type],),
        catalog=False,
    )


def ecs_type_for(audit_type: str) -> tuple[str, ...]:
    return (_ECS_TYPE[audit_type],)
