"""Redaction: nothing that looks like a credential leaves the normalizer.

Two kinds of rules, both applied to ``before``, ``after``, the extra ``data`` and every diff
value alike, before anything is rendered:

* **Key names** (case-insensitive, matched anywhere in the key): under a key that looks
  secret, the whole value becomes ``"[REDACTED]"`` (objects and arrays included), except
  ``true``, ``false`` and ``null``, which cannot carry a secret and say useful things
  ("passwordSet": true). Built in: password, passwd, passphrase, pwd, secret, token,
  api key, access key, private key, client secret, authorization, cookie, session,
  credential, bearer, jwt, connection string.
* **Value patterns** (searched inside every string, whatever its key, and in keys): the
  matching part becomes ``"[REDACTED]"`` and the rest of the text stays readable. Built in:
  Bearer and Basic credentials, JWTs, PEM private keys, AWS access key ids, GitHub, GitLab,
  Slack, Stripe, Google, npm and SendGrid tokens, Slack webhook URLs, ``user:password@`` in
  URLs, ``password=...``-style pairs in free text, and bcrypt and argon2 password hashes.

A name/value pair counts too: in an object such as ``{"key": "SMTP_PASSWORD", "value": ...}``
(or ``"name"`` instead of ``"key"``), a secret-looking name hides the ``value`` beside it, as
Appmixer's configuration entries are written that way.

A diff entry under a secret-looking key keeps its path and op, so the change stays visible,
with old and new both ``"[REDACTED]"``.

``NormalizeOptions.redact_keys`` and ``redact_values`` add regular expressions to the
built-in lists (they never replace them). A value pattern may keep a prefix readable with a
named group ``keep``: ``(?P<keep>pin=)\\d+`` turns ``pin=1234`` into ``pin=[REDACTED]``.

Redaction runs on the full text, before any length cap, so a cut can never leave half a
secret behind. The same pass caps what is stored: strings at ``max_chars`` (marked
``…[truncated N chars]``), nesting at ``max_depth`` and the number of values in one state.

Speed: verdicts on keys and strings are remembered (bounded), and a container whose keys and
strings are all known to be plain comes back as the very same object, without a copy; one
whose keys are all plain but a value changed is copied at C speed and patched in place. A new
string is first checked for the texts every built-in value pattern's match contains, with one
expression; a new ASCII key against the lowercase key patterns, without IGNORECASE (equal
verdicts on ASCII, several times faster).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import islice
from typing import Any, Final

from agent.normalize.patterns import (
    BUILTIN_KEYS,
    BUILTIN_TRIGGERS,
    BUILTIN_VALUES,
    REDACTED,
    combined,
    compile_all,
    literals,
    replace_match,
)

__all__ = ["MAX_ITEMS", "MAX_STORED_DEPTH", "PAIR_NAMES", "REDACTED", "Redactor"]

# orjson refuses to encode deeper than 254 levels; states sit three levels into a document.
MAX_STORED_DEPTH: Final = 200
MAX_ITEMS: Final = 10_000
PAIR_NAMES = ("key", "name")  # {"key": "SMTP_PASSWORD", "value": "..."}
_MEMORY: Final = 16_384  # remembered verdicts, per kind; forgotten all at once when full
_MEMORABLE: Final = 256  # longer keys and strings are checked every time


class Redactor:
    """Compiled rules plus the caps; built once, then pure and safe to share."""

    def __init__(
        self,
        extra_keys: Iterable[str] = (),
        extra_values: Iterable[str] = (),
        *,
        max_depth: int = 32,
        max_chars: int = 2048,
        max_items: int = MAX_ITEMS,
    ) -> None:
        # The built-in key patterns are lowercase ASCII: on an ASCII key, searching the
        # lowercased key case-sensitively finds exactly what an IGNORECASE search finds, much
        # faster. Other keys (where IGNORECASE also matches the long s U+017F for "s" and the
        # Kelvin sign U+212A for "k") and the configured patterns take the IGNORECASE search.
        builtin_keys = "|".join(f"(?:{pattern})" for pattern in BUILTIN_KEYS)
        self._ascii_key = re.compile(builtin_keys)
        self._any_builtin_key = re.compile(builtin_keys, re.IGNORECASE)
        self._extra_keys = compile_all(extra_keys, "redact_keys", re.IGNORECASE)
        self._any_extra_key = combined(self._extra_keys, re.IGNORECASE)
        self._trigger = re.compile(literals(BUILTIN_TRIGGERS))
        self._extra_values = compile_all(extra_values, "redact_values", re.DOTALL)
        self._values = [*compile_all(BUILTIN_VALUES, "redact_values", re.DOTALL)]
        self._values += self._extra_values
        self._any_extra = combined(self._extra_values, re.DOTALL) if self._extra_values else None
        self.max_depth = max(1, min(max_depth, MAX_STORED_DEPTH))
        self.max_chars = max_chars
        self.max_items = max_items
        self._plain_keys: set[str] = set()  # not secret, stored as they are
        self._keys_seen: dict[str, tuple[bool, str | None]] = {}  # the others
        self._plain_texts: set[str] = set()  # unchanged by scrub and cap
        self._texts_seen: dict[str, str] = {}  # the others, and what they become

    # --- keys
    def _key_entry(self, key: str) -> tuple[bool, str | None]:
        """(values under it are hidden, the key as stored or None when unchanged)."""
        if key.isascii():
            secret = self._ascii_key.search(key.lower()) is not None
        else:
            secret = self._any_builtin_key.search(key) is not None
        if not secret and self._extra_keys:
            if self._any_extra_key is not None:
                secret = self._any_extra_key.search(key) is not None
            else:
                secret = any(pattern.search(key) for pattern in self._extra_keys)
        shown = self.text(key)
        entry = (secret, None if shown == key else shown)
        if len(key) <= _MEMORABLE:
            if not secret and entry[1] is None:
                _remember(self._plain_keys, key)
            else:
                if len(self._keys_seen) >= _MEMORY:
                    self._keys_seen.clear()
                self._keys_seen[key] = entry
        return entry

    def secret_key(self, key: str) -> bool:
        """Whether values under this key are hidden."""
        if key in self._plain_keys:
            return False
        return (self._keys_seen.get(key) or self._key_entry(key))[0]

    def secret_pair(self, value: dict[str, Any]) -> bool:
        """Whether the object is a name/value pair whose name looks secret."""
        if "value" not in value:
            return False
        for name_key in PAIR_NAMES:
            name = value.get(name_key)
            if type(name) is str and self.secret_key(name):
                return True
        return False

    # --- strings
    def scrub(self, text: str) -> str:
        """The text with every credential-shaped part replaced."""
        if not self._may_hold_secret(text):
            return text
        for pattern in self._values:
            text = pattern.sub(replace_match, text)
        return text

    def _may_hold_secret(self, text: str) -> bool:
        if self._trigger.search(text.lower()) is not None:
            return True
        if not self._extra_values:
            return False
        if self._any_extra is not None:
            return self._any_extra.search(text) is not None
        return any(pattern.search(text) for pattern in self._extra_values)

    def cap(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return f"{text[: self.max_chars]}…[truncated {len(text) - self.max_chars} chars]"

    def text(self, text: str) -> str:
        """Scrubbed, then capped: safe to store or render."""
        if text in self._plain_texts:
            return text
        known = self._texts_seen.get(text)
        if known is not None:
            return known
        result = self.cap(self.scrub(text))
        if len(text) <= _MEMORABLE:
            if result == text:
                _remember(self._plain_texts, text)
                return text
            if len(self._texts_seen) >= _MEMORY:
                self._texts_seen.clear()
            self._texts_seen[text] = result
        return result

    # --- values
    def hide(self, value: Any) -> Any:
        """What a value under a secret-looking key becomes."""
        return value if value is None or type(value) is bool else REDACTED

    def clean(self, value: Any, depth: int = 0) -> Any:
        """A redacted, size- and depth-capped version of any JSON value (``value`` itself
        when nothing in it had to change)."""
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is dict or kind is list:
            return self._container(value, depth, _Budget(self.max_items))
        return value

    def _container(self, value: Any, depth: int, budget: _Budget) -> Any:
        if depth >= self.max_depth:
            return f"[truncated: nested deeper than {self.max_depth} levels]"
        size = len(value)
        if size > budget.left:
            return self._cut(value, depth, budget)
        budget.left -= size
        if type(value) is list:
            return self._clean_list(value, depth, budget)
        mapping: dict[str, Any] = value  # a dict here (callers test the exact type)
        if not self._plain_keys.issuperset(mapping) or (
            "value" in mapping and self.secret_pair(mapping)
        ):
            return self._clean_dict(mapping, depth, budget)
        # Every key is plain and stays as it is: only values can change. The dict is copied
        # (at C speed, order kept) on the first change, and changed values are set in place.
        plain_texts = self._plain_texts
        deeper = depth + 1
        out: dict[str, Any] | None = None
        for key, item in mapping.items():
            item_kind = type(item)
            cleaned: Any  # a text or a container: typed for both, not for the first found
            if item_kind is str:
                if item in plain_texts:
                    continue
                cleaned = self.text(item)
            elif (item_kind is dict or item_kind is list) and (item or deeper >= self.max_depth):
                cleaned = self._container(item, deeper, budget)
            else:  # a number, true, false, null, or an empty container within the depth cap
                continue
            if cleaned is not item:
                if out is None:
                    out = mapping.copy()
                out[key] = cleaned
        return mapping if out is None else out

    def _clean_dict(self, value: dict[str, Any], depth: int, budget: _Budget) -> dict[str, Any]:
        """The general case: keys that hide their value or are shown otherwise, pairs."""
        out: dict[str, Any] | None = None
        plain_keys, plain_texts = self._plain_keys, self._plain_texts
        pair = self.secret_pair(value)
        for index, (key, item) in enumerate(value.items()):
            if key in plain_keys:
                secret, shown = False, None
            else:
                secret, shown = self._keys_seen.get(key) or self._key_entry(key)
            if pair and key == "value":
                secret = True
            item_kind = type(item)
            if secret and item is not None and item_kind is not bool:
                cleaned: Any = REDACTED
            elif item_kind is str:
                cleaned = item if item in plain_texts else self.text(item)
            elif item_kind is dict or item_kind is list:
                cleaned = self._container(item, depth + 1, budget)
            else:
                cleaned = item
            if out is None:
                if cleaned is item and shown is None:
                    continue
                out = dict(islice(value.items(), index))
            out[key if shown is None else shown] = cleaned
        return value if out is None else out

    def _clean_list(self, value: list[Any], depth: int, budget: _Budget) -> list[Any]:
        out: list[Any] | None = None
        plain_texts = self._plain_texts
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind is str:
                cleaned = item if item in plain_texts else self.text(item)
            elif item_kind is dict or item_kind is list:
                cleaned = self._container(item, depth + 1, budget)
            else:
                cleaned = item
            if out is None:
                if cleaned is item:
                    continue
                out = value[:index]
            out.append(cleaned)
        return value if out is None else out

    def _cut(self, value: Any, depth: int, budget: _Budget) -> Any:
        """A container larger than what is left of the budget: keep its head, mark the rest."""
        keep = max(budget.left, 0)
        budget.left = 0
        if type(value) is list:
            head = self._clean_list(value[:keep], depth, budget)
            return [*head, f"[truncated: {len(value) - keep} more items]"]
        cut = self._clean_dict(dict(islice(value.items(), keep)), depth, budget)
        return {**cut, "…": f"[truncated: {len(value) - keep} more keys]"}


class _Budget:
    """How many more values one state may hold (an attribute: a native integer when
    compiled)."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def _remember(memory: set[str], item: str) -> None:
    if len(memory) >= _MEMORY:
        memory.clear()
    memory.add(item)
