"""The one policy for keeping credentials out of logs and messages.

A value is masked when its *name* looks secret (a password, secret, token, API key,
authorization header or cookie), and a URL never shows its user information
(``https://user:password@host`` becomes ``https://[REDACTED]@host``). Structured logs
(``common.log``) and the messages about bad settings (``agent.config``) both apply it.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"

_SECRET_NAME = re.compile(r"pass(word)?|secret|token|api_?key|authorization|cookie", re.I)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def looks_secret(name: str) -> bool:
    """Whether a value under this name (a log key, a setting) must not be shown."""
    return _SECRET_NAME.search(name) is not None


def without_userinfo(text: str) -> str:
    """Every ``scheme://user[:password]@`` in ``text`` shown as ``scheme://[REDACTED]@``."""
    return _USERINFO.sub(MASK + "@", text)
