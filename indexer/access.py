"""Least privilege: API keys limited to one of our roles, and a check of what a credential may do.

An API key minted here carries the role's own descriptor from ``mappings/roles/`` (the one
source of truth), so the key can never do more than the role, whatever its creator may do.
The write check lets the agent refuse to start with a credential that can only read, in one
clear line, instead of retrying forever. When it cannot tell (security off, the node away, a
certificate or a credential refused) it says so (``problem``), and the agent waits and
retries as it always does: a fixed CA or a new key must not find events lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from elastic_transport import TlsError
from elasticsearch import ApiError, AuthenticationException, Elasticsearch, TransportError

import mappings
from common.log import get_logger

log = get_logger(__name__)

Role = Literal["writer", "reader"]
ROLE_NAMES: dict[Role, str] = {
    "writer": "appmixer_audit_writer",
    "reader": "appmixer_audit_reader",
}
WRITE_PRIVILEGE = "create_doc"
TEMPLATE_PRIVILEGE = "manage_index_templates"


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


@dataclass(frozen=True)
class WriteAccess:
    """What the node said: the targets this credential may not write, or why it could not
    be asked (``problem``; None also when security is simply off)."""

    lacking: list[str]
    problem: str | None = None


def check_write_access(es: Elasticsearch, targets: list[str]) -> WriteAccess:
    """Ask the node whether this credential may create documents in every target."""
    try:
        answer = es.security.has_privileges(
            index=[{"names": targets, "privileges": [WRITE_PRIVILEGE]}]
        )
    except (ApiError, TransportError) as exc:
        return WriteAccess([], explain(exc))
    return WriteAccess(lacking(answer.body, targets))


def may_install_templates(es: Elasticsearch) -> bool:
    """Whether this credential may install index templates (``manage_index_templates``).

    True where the node cannot say (security off): setup then finds out by trying. The
    client's errors for a node that cannot be asked propagate, for the caller to retry.
    """
    try:
        answer = es.security.has_privileges(cluster=[TEMPLATE_PRIVILEGE])
    except ApiError as exc:
        if isinstance(exc, AuthenticationException):
            raise
        return True  # no security API to ask: nothing limits this credential
    return bool(answer.body.get("cluster", {}).get(TEMPLATE_PRIVILEGE, False))


def explain(exc: ApiError | TransportError) -> str | None:
    """One line an operator can act on, for failures a setting can fix; None otherwise."""
    if isinstance(exc, TlsError):
        return (
            f"TLS failed: {exc.message}; check ES_CA_CERTS (the CA that signed the node's "
            "certificate) and that ES_URL names the host the certificate is for"
        )
    if isinstance(exc, AuthenticationException):
        return (
            "Elasticsearch refused the credential (401): the API key was revoked, expired or "
            "mistyped, or the password is wrong; write a valid one to ES_API_KEY_FILE "
            "(ES_PASSWORD_FILE), which a running agent picks up, or set it and restart"
        )
    return None  # security off (no such API), the node away: nothing to fix in our settings


class AccessReport:
    """Says once, as an error, that the node refuses our certificate or credential.

    Retries go on being logged as warnings, attempt by attempt; this is the one line that
    says what to fix. It is said again only when the problem changes, and its end (the node
    answers again) is one info line, so an operator sees both when a key was revoked and
    when the new one took effect.
    """

    def __init__(self) -> None:
        self.problem: str | None = None

    def failed(self, exc: ApiError | TransportError) -> None:
        """A request failed: report it if a setting can fix it and it is news."""
        self.report(explain(exc))

    def report(self, problem: str | None) -> None:
        if problem is not None and problem != self.problem:
            log.error("elasticsearch_access_failed", reason=problem)
            self.problem = problem

    def answered(self) -> None:
        """A request went through: a reported problem is over."""
        if self.problem is not None:
            log.info("elasticsearch_access_restored")
            self.problem = None


def lacking(answer: dict[str, Any], targets: list[str]) -> list[str]:
    """From a ``_has_privileges`` answer: the targets without the write privilege."""
    granted = answer.get("index", {})
    return [t for t in targets if not granted.get(t, {}).get(WRITE_PRIVILEGE, False)]
