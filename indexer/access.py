"""Least privilege: API keys limited to one of our roles, and a check of what a credential may do.

An API key minted here carries the role's own descriptor from ``mappings/roles/`` (the one
source of truth), so the key can never do more than the role, whatever its creator may do.
The write check lets the agent refuse to start with a credential that can only read, in one
clear line, instead of retrying forever; it says nothing (``None``) when it cannot tell:
security off, or the node away (the agent then waits and retries as it always does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from elasticsearch import ApiError, AuthenticationException, Elasticsearch, TransportError

import mappings

Role = Literal["writer", "reader"]
ROLE_NAMES: dict[Role, str] = {
    "writer": "appmixer_audit_writer",
    "reader": "appmixer_audit_reader",
}
WRITE_PRIVILEGE = "create_doc"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    encoded: str  # what ES_API_KEY takes; shown once, never logged

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, name={self.name!r}, encoded='[REDACTED]')"


def role_descriptor(role: Role) -> dict[str, Any]:
    """The role's privileges as an API key descriptor (its metadata stays with the role)."""
    body = mappings.load("roles", ROLE_NAMES[role])
    return {key: value for key, value in body.items() if key in {"cluster", "indices"}}


def key_request(role: Role, name: str | None, now: datetime) -> dict[str, Any]:
    """The body of ``POST /_security/api_key`` for a key limited to ``role``."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        "name": name or f"appmixer-audit-{role}-{stamp}",
        "role_descriptors": {ROLE_NAMES[role]: role_descriptor(role)},
        "metadata": {"managed_by": "appmixer-audit", "role": role},
    }


def create_api_key(es: Elasticsearch, role: Role, *, name: str | None = None) -> ApiKey:
    body = key_request(role, name, datetime.now(UTC))
    created = es.security.create_api_key(**body)
    return ApiKey(str(created["id"]), str(created["name"]), str(created["encoded"]))


def missing_write_privileges(es: Elasticsearch, targets: list[str]) -> list[str] | None:
    """The targets this credential may not create documents in; None when it cannot tell."""
    try:
        answer = es.security.has_privileges(
            index=[{"names": targets, "privileges": [WRITE_PRIVILEGE]}]
        )
    except AuthenticationException:
        return None  # a wrong or revoked credential: the run loop retries and says so
    except (ApiError, TransportError):
        return None  # security off, or the node away
    return lacking(answer.body, targets)


def lacking(answer: dict[str, Any], targets: list[str]) -> list[str]:
    """From a ``_has_privileges`` answer: the targets without the write privilege."""
    granted = answer.get("index", {})
    return [t for t in targets if not granted.get(t, {}).get(WRITE_PRIVILEGE, False)]
