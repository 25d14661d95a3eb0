"""Redaction: secret-looking keys and credential-shaped values never leave the normalizer."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.normalize import Normalized, NormalizeOptions, Normalizer
from agent.normalize.patterns import (
    BUILTIN_KEYS,
    BUILTIN_TRIGGERS,
    BUILTIN_VALUES,
    literals,
    replace_match,
)
from agent.normalize.redact import REDACTED, Redactor

TOKEN = "Q1w2E3r4T5y6U7i8O9p0"  # long and random-looking: it cannot appear by accident


class TestKeys:
    @pytest.mark.parametrize(
        "name",
        [
            "password", "newPassword", "passwd", "smtp_pwd", "passphrase", "clientSecret",
            "client_secret", "token", "accessToken", "refresh_token", "apiKey", "api-key",
            "x-api-key", "aws_access_key_id", "privateKey", "private_key", "Authorization",
            "cookie", "Set-Cookie", "sessionId", "credentials", "bearerToken", "jwt",
            "connectionString",
        ],
    )  # fmt: skip
    def test_secret_names(self, name: str) -> None:
        """Keys that look secret hide their whole value, whatever its case or decoration."""
        redactor = Redactor()
        assert redactor.secret_key(name)
        assert redactor.clean({name: "s3cr3t"}) == {name: REDACTED}

    @pytest.mark.parametrize("name", ["name", "email", "stage", "clientId", "type", "keys"])
    def test_plain_names(self, name: str) -> None:
        """Ordinary keys keep their values."""
        assert not Redactor().secret_key(name)

    def test_whole_subtrees_are_hidden(self) -> None:
        """An object or array under a secret key becomes one marker."""
        cleaned = Redactor().clean({"credentials": {"user": "a", "pass": "b"}, "tokens": [1, 2]})
        assert cleaned == {"credentials": REDACTED, "tokens": REDACTED}

    def test_booleans_and_null_stay(self) -> None:
        """true, false and null under a secret key cannot leak anything and are kept."""
        cleaned = Redactor().clean({"passwordSet": True, "token": None, "secret": False})
        assert cleaned == {"passwordSet": True, "token": None, "secret": False}

    def test_extra_key_patterns(self) -> None:
        """Configured key patterns add to the built-in ones."""
        redactor = Redactor(extra_keys=["^ssn$"])
        assert redactor.clean({"ssn": "1", "ssn_note": "x", "password": "p"}) == {
            "ssn": REDACTED,
            "ssn_note": "x",
            "password": REDACTED,
        }

    def test_bad_pattern_is_a_clear_error(self) -> None:
        """An invalid expression fails at construction, naming the setting and the pattern."""
        with pytest.raises(ValueError, match=r"invalid redact_keys pattern '\(unclosed'"):
            Redactor(extra_keys=["(unclosed"])
        with pytest.raises(ValueError, match="invalid redact_values pattern"):
            Redactor(extra_values=["[z-a]"])


class TestValues:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer [REDACTED]"),
            (f"bearer {TOKEN}", "bearer [REDACTED]"),
            ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED]"),
            ("Basic authentication is enabled", "Basic authentication is enabled"),
            (f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{TOKEN}", REDACTED),
            (f"-----BEGIN RSA PRIVATE KEY-----\n{TOKEN}\n-----END RSA PRIVATE KEY----- ok",
             "[REDACTED] ok"),
            (f"-----BEGIN PRIVATE KEY-----\n{TOKEN}", REDACTED),
            ("key AKIAIOSFODNN7EXAMPLE here", "key [REDACTED] here"),
            (f"ghp_{TOKEN}{TOKEN}", REDACTED),
            (f"github_pat_{TOKEN}{TOKEN}", REDACTED),
            (f"glpat-{TOKEN}", REDACTED),
            (f"xoxb-123456789012-{TOKEN}", REDACTED),
            (f"sk_live_{TOKEN}", REDACTED),
            (f"whsec_{TOKEN}", REDACTED),
            ("https://hooks.slack.com/services/T000/B000/XXXX", REDACTED),
            (f"postgres://app:{TOKEN}@db:5432/app", "postgres://app:[REDACTED]@db:5432/app"),
            (f"password={TOKEN}&user=bob", "password=[REDACTED]&user=bob"),
            (f'{{"token": "{TOKEN}"}}', '{"token": "[REDACTED]"}'),
            (f"api_key: {TOKEN}", "api_key: [REDACTED]"),
            ("$2b$10$Qm9ndXNIYXNoT2xk", REDACTED),
            (f"$argon2id$v=19$m=65536,t=3,p=4${TOKEN}", REDACTED),
            ("Sync leads to CRM", "Sync leads to CRM"),
            ("2026-11-25T10:02:00+01:00", "2026-11-25T10:02:00+01:00"),
        ],
    )  # fmt: skip
    def test_credential_shapes(self, text: str, expected: str) -> None:
        """Each credential shape is replaced in place; ordinary text is left alone."""
        assert Redactor().scrub(text) == expected

    def test_everywhere_in_a_state(self) -> None:
        """Value patterns apply at any depth and inside arrays, under any key."""
        state = {"a": [{"note": f"Bearer {TOKEN}"}], "b": {"c": {"d": [f"sk_live_{TOKEN}"]}}}
        assert TOKEN not in orjson.dumps(Redactor().clean(state)).decode()

    def test_keep_group(self) -> None:
        """A configured value pattern keeps its ``keep`` group readable."""
        redactor = Redactor(extra_values=[r"(?P<keep>pin=)\d+"])
        assert redactor.scrub("pin=1234 ok") == "pin=[REDACTED] ok"

    def test_patterns_with_global_flags(self) -> None:
        """A configured pattern with a global flag still works (checked on its own)."""
        redactor = Redactor(extra_keys=["(?i)^IBAN$"], extra_values=["(?i)^iban:.*$"])
        assert redactor.clean({"iban": "x"}) == {"iban": REDACTED}
        assert redactor.scrub("IBAN: DE00") == REDACTED

    def test_unchanged_values_are_not_copied(self) -> None:
        """A state with nothing to hide comes back as the very same object."""
        state = {"a": {"b": ["x", 1, None]}, "c": "plain"}
        redactor = Redactor()
        assert redactor.clean(state) is state
        assert redactor.clean(state) is state  # and again, from remembered verdicts


class TestCaps:
    def test_long_strings_are_cut_and_marked(self) -> None:
        """A string over the cap keeps its head and says how much was cut."""
        cleaned = Redactor(max_chars=10).clean({"a": "x" * 25})
        assert cleaned == {"a": "xxxxxxxxxx…[truncated 15 chars]"}

    def test_redaction_happens_before_the_cut(self) -> None:
        """A secret straddling the cap is redacted whole, not cut in half."""
        text = "y" * 20 + f"password={TOKEN}"
        cleaned = Redactor(max_chars=24).clean(text)
        assert TOKEN[:4] not in cleaned

    def test_depth_is_capped(self) -> None:
        """Nesting past the cap is replaced by a marker."""
        value: Any = "leaf"
        for _ in range(10):
            value = {"n": value}
        cleaned = Redactor(max_depth=3).clean(value)
        assert cleaned == {"n": {"n": {"n": "[truncated: nested deeper than 3 levels]"}}}

    def test_stored_depth_never_exceeds_the_encoder_limit(self) -> None:
        """Even a 300-level value is cut so that it can be serialized."""
        value: Any = 1
        for _ in range(300):
            value = [value]
        orjson.dumps({"a": {"b": {"c": Redactor(max_depth=256).clean(value)}}})

    def test_item_budget(self) -> None:
        """A state with more values than the budget keeps its head and marks the rest."""
        cleaned = Redactor(max_items=5).clean(list(range(20)))
        assert cleaned == [0, 1, 2, 3, 4, "[truncated: 15 more items]"]
        cleaned = Redactor(max_items=2).clean({str(i): i for i in range(4)})
        assert cleaned == {"0": 0, "1": 1, "…": "[truncated: 2 more keys]"}

    def test_huge_value(self) -> None:
        """A 2 MiB string is cut to the cap without trouble."""
        cleaned = Redactor().clean({"blob": "z" * (2 << 20)})
        assert cleaned["blob"].endswith(f"…[truncated {(2 << 20) - 2048} chars]")


# --- property: planted secrets never come out ---------------------------------------------

secret_part = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=20, max_size=28).map(
    lambda text: "Zq9" + text
)
SECRET_KEYS = ["password", "clientSecret", "apiKey", "token", "Authorization", "privateKey",
               "credentials", "sessionCookie", "x-api-key", "refresh_token"]  # fmt: skip
SHAPES = [
    "Bearer {s}", "password={s}", "token: {s}", "sk_live_{s}", "ghp_{s}{s}", "xoxb-1234-{s}",
    "eyJhbGciOiJIUzI1NiJ9.eyJ{s}.{s}", "AKIA{u}", "-----BEGIN PRIVATE KEY-----\n{s}",
    "$2b$10${s}{s}", "https://bob:{s}@db.example/x", "glpat-{s}", "Basic Q1{s}",
]  # fmt: skip


@st.composite
def planted(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A record with secrets hidden in states, data and a precomputed diff, at random depths."""
    secrets: list[str] = []

    def secret_value(*, keyed: bool) -> Any:
        """A secret: bare only under a secret-looking key, else in a credential shape."""
        token = draw(secret_part)
        secrets.append(token)
        if keyed and draw(st.booleans()):
            return token
        shape = draw(st.sampled_from(SHAPES))
        return "note: " + shape.format(s=token, u=token[:16].upper().ljust(16, "Q"))

    def nested(depth: int) -> Any:
        if depth == 0 or draw(st.integers(0, 3)) == 0:
            choice = draw(st.integers(0, 2))
            if choice == 0:
                return {draw(st.sampled_from(SECRET_KEYS)): secret_value(keyed=True)}
            if choice == 1:
                return secret_value(keyed=False)
            return draw(st.sampled_from(["plain", 1, None, True]))
        if draw(st.booleans()):
            return [nested(depth - 1) for _ in range(draw(st.integers(1, 3)))]
        return {f"k{i}": nested(depth - 1) for i in range(draw(st.integers(1, 3)))}

    record: dict[str, Any] = {"action": "Connector Updated", "created": "2026-11-25T09:00:00Z"}
    kind = draw(st.sampled_from(["states", "before-only", "after-only", "diff", "data"]))
    if kind in ("states", "before-only"):
        record["before"] = {"auth": nested(draw(st.integers(0, 6)))}
    if kind in ("states", "after-only"):
        record["after"] = {"auth": nested(draw(st.integers(0, 6)))}
    if kind == "diff":
        key = draw(st.sampled_from([*SECRET_KEYS, "note"]))
        keyed = key != "note"
        old, new = secret_value(keyed=keyed), secret_value(keyed=keyed)
        record["diff"] = [{"path": f"/config/{key}", "old": old, "new": new}]
    record["data"] = {"headers": nested(draw(st.integers(0, 4)))}
    if draw(st.booleans()):
        record = {"level": 30, "time": 1764064800000, "msg": "audit", "audit": record}
    return record, secrets


class TestPlantedSecrets:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(planted(), st.sampled_from([8, 32]), st.sampled_from([16, 2048]))
    def test_never_in_the_output(
        self, case: tuple[dict[str, Any], list[str]], depth: int, chars: int
    ) -> None:
        """No planted secret appears anywhere in the event or its change documents."""
        record, secrets = case
        options = NormalizeOptions(host_name="h", diff_max_depth=depth, diff_max_value_chars=chars)
        outcome = Normalizer(options)(orjson.dumps(record))
        assert isinstance(outcome, Normalized), outcome
        output = orjson.dumps([outcome.event, outcome.changes]).decode()
        for secret in secrets:
            assert secret not in output
            assert secret[:12] not in output  # no half secret either


class TestPairs:
    def test_name_value_pairs(self) -> None:
        """A secret-looking name hides the value beside it, in states and in the diff."""
        redactor = Redactor()
        assert redactor.clean({"key": "SMTP_PASSWORD", "value": "hunter2"}) == {
            "key": "SMTP_PASSWORD",
            "value": REDACTED,
        }
        assert redactor.clean({"name": "LOG_LEVEL", "value": "debug"}) == {
            "name": "LOG_LEVEL",
            "value": "debug",
        }
        record = {
            "action": "Configuration Updated",
            "created": 0,
            "before": {"key": "WEBHOOK_SECRET", "value": "old-value-1"},
            "after": {"key": "WEBHOOK_SECRET", "value": "new-value-2"},
        }
        outcome = Normalizer()(orjson.dumps(record))
        assert isinstance(outcome, Normalized)
        assert outcome.event["appmixer"]["audit"]["changes"] == [
            {"path": "/value", "op": "replace", "old": REDACTED, "new": REDACTED}
        ]
        assert b"-value-" not in orjson.dumps([outcome.event, outcome.changes])


# --- the fast paths give the verdicts of the plain rules ------------------------------------

# ASCII letters of the built-in patterns in both cases, separators, and the characters that
# IGNORECASE matches beyond ASCII: long s and Kelvin sign (for s and k), dotted and dotless i.
key_text = st.text(
    alphabet="passwordtokenkeyauthsecretcookiesessioncredentialbearerjwtapi_-PASSWORDTOKEN"
    "KEYAUTHSESSION.x1 \u017f\u212a\u0130\u0131",
    max_size=24,
)


def _reference_scrub(text: str) -> str:
    """The value rules as documented: all built-in patterns, in order, once any trigger text
    occurs in the lowercased string."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in BUILTIN_TRIGGERS):
        return text
    for pattern in BUILTIN_VALUES:
        text = re.compile(pattern, re.DOTALL).sub(replace_match, text)
    return text


class TestFastPaths:
    @settings(max_examples=500, deadline=None)
    @given(key_text)
    def test_key_verdicts(self, key: str) -> None:
        """A key is secret exactly when a built-in pattern matches it, ignoring case."""
        expected = any(re.search(pattern, key, re.IGNORECASE) for pattern in BUILTIN_KEYS)
        assert Redactor().secret_key(key) == expected

    @pytest.mark.parametrize("key", ["pa\u017fsword", "api\u212aey", "TO\u212aEN", "Api-Key"])
    def test_non_ascii_case_folding(self, key: str) -> None:
        """Keys outside ASCII still match the way an IGNORECASE search does."""
        assert Redactor().secret_key(key)

    def test_extra_patterns_on_ascii_keys(self) -> None:
        """Configured key patterns apply besides the built-in ones, whatever the key."""
        redactor = Redactor(extra_keys=["(?i)^IBAN$", "ssn"])
        assert redactor.secret_key("IBAN")
        assert redactor.secret_key("my_SSN")
        assert redactor.secret_key("password")
        assert not redactor.secret_key("ibanx")

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.text(alphabet="ab$-._:/", min_size=1, max_size=4), max_size=6),
           st.text(alphabet="ab$-._:/", max_size=12))  # fmt: skip
    def test_literals(self, words: list[str], text: str) -> None:
        """The literal trie finds a match exactly when one of its words occurs."""
        if not words:
            return
        assert bool(re.search(literals(words), text)) == any(word in text for word in words)

    @settings(max_examples=500, deadline=None)
    @given(st.text(alphabet="BearerBasicAKIAghp_xoxb-sk_live_pass=wordtoken: $2b$10 "
                   "eyJ.abcdefghijklmnop0123456789\u017f\u0130", max_size=60))  # fmt: skip
    def test_scrub_matches_the_rules(self, text: str) -> None:
        """scrub gives what the rules as written give, for any text."""
        assert Redactor().scrub(text) == _reference_scrub(text)

    def test_copy_on_change(self) -> None:
        """A changed value copies only the containers above it; order and input are kept."""
        shared = {"x": [1, 2]}
        headers = {"Authorization": "Basic dXNlcjE="}
        state: dict[str, Any] = {"a": 1, "b": {"c": shared, "headers": headers}, "z": 2}
        cleaned = Redactor().clean(state)
        assert list(cleaned) == ["a", "b", "z"]
        assert list(cleaned["b"]) == ["c", "headers"]
        assert cleaned["b"]["c"] is shared
        assert cleaned["b"]["headers"] == {"Authorization": REDACTED}
        assert headers == {"Authorization": "Basic dXNlcjE="}

    def test_empty_containers_at_the_depth_cap(self) -> None:
        """An empty object or array past the depth cap is marked like any other."""
        cleaned = Redactor(max_depth=2).clean({"a": {"b": {}, "c": []}, "d": {}})
        marker = "[truncated: nested deeper than 2 levels]"
        assert cleaned == {"a": {"b": marker, "c": marker}, "d": {}}
