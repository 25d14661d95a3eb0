"""The built-in redaction rules, and how rule lists are compiled and combined.

See ``redact`` for what they do; ``docs/redaction.md`` lists them for operators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[REDACTED]"
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")

BUILTIN_KEYS: tuple[str, ...] = (
    r"passw(?:or)?d",
    r"passphrase",
    r"pwd",
    r"secret",
    r"token",
    r"api[_-]?key",
    r"access[_-]?key",
    r"private[_-]?key",
    r"client[_-]?secret",
    r"authori[sz]ation",
    r"cookie",
    r"session",
    r"credential",
    r"bearer",
    r"jwt",
    r"connection[_-]?string",
)

BUILTIN_VALUES: tuple[str, ...] = (
    # HTTP credentials: Bearer (any token68), Basic (base64 with a digit, capital or padding).
    r"(?P<keep>(?i:bearer)\s+)[A-Za-z0-9\-._~+/]{8,}=*",
    r"(?P<keep>(?i:basic)\s+)(?=[a-z+/]*[A-Z0-9=])[A-Za-z0-9+/]{8,}={0,2}",
    # JSON Web Tokens (an unsigned one included).
    r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    # PEM private keys, up to the END line or the end of a cut text.
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|.*)",
    # Provider key formats.
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{20,255}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,255}",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{8,}",
    r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}",
    r"\bwhsec_[A-Za-z0-9]{16,}",
    r"\bAIza[A-Za-z0-9_-]{35}",
    r"\bnpm_[A-Za-z0-9]{36}",
    r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+",
    # user:password@ in URLs.
    r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:)[^/@\s]+(?=@)",
    # password=..., "token": "...", api_key: ... in free text.
    r"(?P<keep>(?i:passw(?:or)?d|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key"
    r"|auth)[\"']?\s*[=:]\s*[\"']?)[^\s&;,\"'<>]+",
    # Password hashes: bcrypt ($2a$/$2b$/$2y$) and argon2.
    r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{8,}",
    r"\$argon2(?:id|i|d)\$[^\s\"']+",
)

# Every built-in value pattern's match contains one of these (lowercased): a few substring
# tests rule out most strings without running the expressions.
BUILTIN_TRIGGERS: tuple[str, ...] = (
    "bearer", "basic", "eyj", "-----begin",
    "akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox",
    "sk_", "rk_", "whsec_", "aiza", "npm_", "sg.", "://",
    "pass", "pwd", "secret", "token", "key", "auth", "$2", "$argon2",
)  # fmt: skip


def literals(words: Iterable[str]) -> str:
    """One expression matching wherever any of ``words`` occurs, as a trie (``a(?:kia|sia)``
    rather than ``akia|asia``): the regex engine then tries one branch per first letter
    instead of every word at every position."""
    heads: dict[str, list[str]] = {}
    for word in sorted(set(words)):
        heads.setdefault(word[:1], []).append(word[1:])
    branches = []
    for head, tails in heads.items():
        if "" in tails:  # the head alone is a word: longer ones add nothing to "occurs"
            branches.append(re.escape(head))
        elif len(tails) == 1:
            branches.append(re.escape(head + tails[0]))
        else:
            branches.append(f"{re.escape(head)}(?:{literals(tails)})")
    return "|".join(branches)


def compile_all(patterns: Iterable[str], what: str, flags: int = 0) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, flags))
        except re.error as exc:
            raise ValueError(f"invalid {what} pattern {pattern!r}: {exc}") from None
    return compiled


def combined(patterns: list[re.Pattern[str]], flags: int) -> re.Pattern[str] | None:
    """One alternation to test everything at once; ``None`` when the parts cannot be joined
    (a global flag inside a user pattern, a back-reference to a renamed group)."""
    parts = [_NAMED_GROUP.sub("(?:", pattern.pattern) for pattern in patterns]
    try:
        return re.compile("|".join(f"(?:{part})" for part in parts), flags)
    except re.error:
        return None


def replace_match(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep")
    return (keep or "") + REDACTED
