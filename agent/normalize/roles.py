"""The roles a user-management event grants: ECS ``user.changes.roles``.

Appmixer keeps a user's rights in a list, ``scope`` (``["user", "admin"]``); other services
and versions call it ``roles`` or keep a single ``role``. A user created with roles is granted
all of them; a user updated is granted the roles that the after state has and the before
state had not. A revocation grants nothing, so a rule on ``user.changes.roles:admin`` fires on
the grant and never on the removal (a wildcard over the diff's values could not tell them
apart). Without states, a precomputed diff gives the same answer: the values its changes of a
roles key add, less those they remove.

Pure and small: the normalizer's hot path calls it for user events only.
"""

from __future__ import annotations

from typing import Any, Final

from agent.normalize.diff import MISSING, Change

ROLE_KEYS: Final = ("scope", "roles", "role")
GRANTING_ACTIONS: Final = frozenset({"user.created", "user.updated"})
MAX_ROLES: Final = 64
ROLE_CHARS: Final = 1024


def _names(value: Any) -> list[str]:
    """Role names in a roles value: a name, or a list of names (anything else is skipped)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    return []


def _state_roles(state: Any) -> list[str] | None:
    """The roles a state holds, or None when it has no roles key at all."""
    if not isinstance(state, dict):
        return None
    for key in ROLE_KEYS:
        if key in state:
            return _names(state[key])
    return None


def _diff_roles(changes: list[Change]) -> list[str]:
    """Names the changes of a roles key add: new values less old ones, per change."""
    granted: list[str] = []
    for change in changes:
        head = change.path.split("/", 2)[1] if change.path.startswith("/") else ""
        if head not in ROLE_KEYS or change.new is MISSING:
            continue
        old = [] if change.old is MISSING else _names(change.old)
        granted.extend(name for name in _names(change.new) if name not in old)
    return granted


def granted_roles(action: str, before: Any, after: Any, changes: list[Change]) -> list[str]:
    """The roles the event grants, distinct, in order, capped; empty when it grants none."""
    if action not in GRANTING_ACTIONS:
        return []
    new = _state_roles(after)
    if new is not None:
        old = _state_roles(before) or []
        found = [name for name in new if name not in old]
    else:
        found = _diff_roles(changes)
    granted: list[str] = []
    for found_name in found:
        name = found_name[:ROLE_CHARS]
        if name not in granted:
            granted.append(name)
            if len(granted) == MAX_ROLES:
                break
    return granted
