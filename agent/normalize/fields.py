"""Coercions from loosely typed input values to the scalar fields of the document.

Lenient on purpose: a number where text was expected becomes text, an IP that does not parse
is left out; one odd value must never lose an audit event.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

OUTCOMES: dict[str, str] = {
    **dict.fromkeys(("success", "succeeded", "successful", "ok", "true", "passed"), "success"),
    **dict.fromkeys(
        ("failure", "failed", "fail", "error", "denied", "rejected", "false", "unauthorized"),
        "failure",
    ),
}
AUDIT_TYPES = frozenset({"create", "update", "delete", "access"})


def text(value: Any, cap: int) -> str | None:
    """Text for a keyword field: strings stripped, numbers spelled out, others ignored."""
    kind = type(value)
    stripped: str
    if type(value) is str:  # narrows ``value``: the compiled build calls str.strip directly
        stripped = value.strip()
    elif kind is int or kind is float:
        stripped = str(value)
    elif kind is dict and len(value) == 1 and type(oid := value.get("$oid")) is str:
        stripped = str(oid).strip()  # MongoDB extended JSON: {"$oid": "..."}
    else:
        return None
    if not stripped:
        return None
    return stripped if len(stripped) <= cap else stripped[:cap]


def outcome(value: Any) -> str | None:
    if type(value) is bool:
        return "success" if value else "failure"
    if type(value) is int:
        return "failure" if value >= 400 else "success" if 100 <= value < 400 else None
    if type(value) is str:
        return OUTCOMES.get(value.strip().lower())
    return None


def audit_type(value: Any) -> str | None:
    if type(value) is str:
        lowered = value.strip().lower()
        if lowered in AUDIT_TYPES:
            return lowered
    return None


def _dotted_quad(candidate: str) -> bool:
    """Whether ``ipaddress.IPv4Address`` takes the text as it is: four decimal octets of
    ASCII digits, each at most 255, none with a leading zero (its text is then itself)."""
    octets = candidate.split(".")
    if len(octets) != 4:
        return False
    for octet in octets:
        if not (0 < len(octet) <= 3 and octet.isascii() and octet.isdigit()):
            return False
        if (octet[0] == "0" and len(octet) > 1) or int(octet) > 255:
            return False
    return True


def _parse_ip(candidate: str) -> str | None:
    if _dotted_quad(candidate):  # the common case, without ipaddress's objects
        return candidate
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.scope_id is not None:  # fe80::1%eth0: Elasticsearch takes no zone
            return str(ipaddress.IPv6Address(str(address).split("%", 1)[0]))
    return str(address)


def ip(value: Any) -> str | None:
    """An address Elasticsearch's ``ip`` type accepts, or None.

    Takes the first of a forwarded-for list and drops a port (``1.2.3.4:80``, ``[::1]:80``).
    """
    if type(value) is not str or not value or len(value) > 100:
        return None
    return _address(value)


@lru_cache(maxsize=4096)
def _address(value: str) -> str | None:
    """``ip`` for a string: services repeat their clients' addresses, so it is remembered."""
    candidate = value.split(",", 1)[0].strip()
    if candidate.startswith("["):
        candidate = candidate[1:].split("]", 1)[0]
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    return _parse_ip(candidate)
