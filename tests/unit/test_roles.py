"""``user.changes.roles``: the roles a user event grants, never those it revokes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agent.normalize import Normalized, Normalizer
from agent.normalize.diff import MISSING, Change
from agent.normalize.roles import granted_roles


def user_of(record: dict[str, Any]) -> dict[str, Any]:
    outcome = Normalizer()(orjson.dumps({"id": "e1", "created": 0, "email": "a@x.io"} | record))
    assert isinstance(outcome, Normalized)
    user: dict[str, Any] = outcome.event["user"]
    return user


class TestGrantedRoles:
    @pytest.mark.parametrize(
        ("action", "before", "after", "granted"),
        [
            ("user.updated", {"scope": ["user"]}, {"scope": ["user", "admin"]}, ["admin"]),
            ("user.updated", {"scope": ["user", "admin"]}, {"scope": ["user"]}, []),
            ("user.updated", {"scope": ["admin"]}, {"scope": ["admin"], "name": "b"}, []),
            ("user.created", MISSING, {"roles": ["user", "admin", "admin"]}, ["user", "admin"]),
            ("user.updated", {"role": "user"}, {"role": "admin"}, ["admin"]),
            ("user.updated", {"name": "a"}, {"name": "b"}, []),
            ("flow.updated", {"scope": []}, {"scope": ["admin"]}, []),
        ],
        ids=["grant", "revocation", "kept", "created", "single role", "no roles", "not a user"],
    )
    def test_from_states(self, action: str, before: Any, after: Any, granted: list[str]) -> None:
        assert granted_roles(action, before, after, []) == granted

    def test_from_a_precomputed_diff(self) -> None:
        """Without states, the values a roles change adds, less those it had."""
        grant = [Change("/scope/1", "add", MISSING, "admin")]
        whole = [Change("/scope", "replace", ["user", "admin"], ["user"])]
        other = [Change("/name", "replace", "a", "admin")]
        assert granted_roles("user.updated", MISSING, MISSING, grant) == ["admin"]
        assert granted_roles("user.updated", MISSING, MISSING, whole) == []
        assert granted_roles("user.updated", MISSING, MISSING, other) == []


class TestDocument:
    def test_grant_fills_user_changes_roles(self) -> None:
        record = {
            "action": "user.updated",
            "entity": {"type": "user", "id": "u2"},
            "before": {"scope": ["user"]},
            "after": {"scope": ["user", "admin"]},
        }
        assert user_of(record)["changes"] == {"roles": ["admin"]}

    def test_revocation_leaves_it_out(self) -> None:
        record = {
            "action": "user.updated",
            "before": {"scope": ["user", "admin"]},
            "after": {"scope": ["user"]},
        }
        assert "changes" not in user_of(record)
