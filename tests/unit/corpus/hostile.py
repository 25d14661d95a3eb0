"""A corpus of hostile lines, each with the outcome the normalizer must give.

Generated in code so that binary content (invalid UTF-8, NUL bytes, a BOM) and huge values
never sit in the repository as odd files. ``python -m tests.unit.corpus.hostile OUT`` writes
the lines as one file, for feeding ``appmixer-audit normalize`` or the agent by hand.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

OK = "Normalized"
SKIP = "Skipped"
REJECT = "Rejected"
MIB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One hostile line and what must become of it."""

    name: str
    line: bytes
    outcome: str  # OK, SKIP or REJECT
    reason: str = ""  # a fragment the reason must contain (skips and rejections)


def _line(record: Any) -> bytes:
    return orjson.dumps(record)


def _event(**extra: Any) -> bytes:
    return _line({"action": "Flow Updated", "created": "2026-11-25T09:00:00Z", **extra})


def _nest(levels: int, leaf: bytes = b"1") -> bytes:
    return b"[" * levels + leaf + b"]" * levels


def _raw(**fields: bytes) -> bytes:
    """An event with fields given as raw JSON text (too deep for any encoder to write)."""
    extra = b"".join(b',"' + name.encode() + b'":' + value for name, value in fields.items())
    return _event()[:-1] + extra + b"}"


def cases() -> list[Case]:
    """Every hostile case, in a stable order."""
    good = _event()
    return [
        # --- bytes that are not UTF-8 JSON text
        Case("invalid utf-8", good[:-1] + b',"x":"\xff\xfe"}', REJECT, "not valid UTF-8"),
        Case("overlong utf-8", b'{"action":"\xc0\xaf"}', REJECT, "not valid UTF-8"),
        Case("raw NUL in a string", good[:-2] + b'\x00"}', REJECT, "control character"),
        Case("NUL byte alone", b"\x00", REJECT, "not valid JSON"),
        Case("escaped NUL in the action", _line({"action": "Flow\u0000Updated", "created": 0}), OK),
        Case("BOM before the object", b"\xef\xbb\xbf" + good, OK),
        Case("BOM alone", b"\xef\xbb\xbf", SKIP, "empty line"),
        Case(
            "lone surrogate escape", b'{"action":"Flow Updated","x":"\\ud800"}', REJECT, "surrogate"
        ),
        Case("not JSON at all", b"this line is not JSON at all", REJECT, "not valid JSON"),
        Case("trailing garbage", good + b" tail", REJECT, "not valid JSON"),
        Case("NaN literal", b'{"action":"Flow Updated","created":NaN}', REJECT, "not valid JSON"),
        Case("truncated object", good[: len(good) // 2], REJECT, "not valid JSON"),
        Case("CRLF line ending", good + b"\r", OK),
        # --- JSON that is not an object
        Case("top-level array", b'[{"action":"Flow Updated"}]', REJECT, "line is an array"),
        Case("top-level string", b'"Flow Updated"', REJECT, "line is a string"),
        Case("top-level number", b"42", REJECT, "line is a number"),
        Case("top-level true", b"true", REJECT, "line is a boolean"),
        Case("top-level null", b"null", REJECT, "line is null"),
        Case("empty line", b"", SKIP, "empty line"),
        Case("whitespace", b" \t  ", SKIP, "empty line"),
        Case("carriage return only", b"\r", SKIP, "empty line"),
        Case("empty object", b"{}", SKIP, "not an audit record"),
        # --- size and depth
        Case("2 MiB value", _event(after={"blob": "x" * (2 * MIB)}), OK),
        Case("2 MiB action", _line({"action": "A" * (2 * MIB), "created": 0}), OK),
        Case("2 MiB of garbage", b"{" + b"x" * (2 * MIB), REJECT, "not valid JSON"),
        Case("300-level before/after", _raw(before=_nest(300), after=_nest(300, b"2")), OK),
        Case("1000-level data", _raw(data=_nest(1000)), OK),
        Case("deeper than the decoder allows", _nest(1100), REJECT, "depth limit"),
        Case("100,000 keys", _event(after={f"k{i}": i for i in range(100_000)}), OK),
        Case("5000-digit number", good[:-1] + b',"after":{"n":' + b"9" * 5000 + b"}}", OK),
        Case("1e400", good[:-1] + b',"before":{"n":1},"after":{"n":1e400}}', OK),
        Case(
            "1e400 as the time",
            b'{"action":"Flow Updated","createdAt":1e400}',
            REJECT,
            "field 'createdAt'",
        ),
        # --- missing or odd action and time
        Case("missing time", _line({"action": "Flow Updated"}), REJECT, "missing event time"),
        Case("missing action", _line({"created": 0, "before": {"a": 1}}), REJECT, "missing action"),
        Case(
            "service log line",
            _line({"level": 30, "time": 0, "msg": "GET /"}),
            SKIP,
            "not an audit record",
        ),
        Case(
            "numeric action",
            _line({"action": 42, "created": 0}),
            REJECT,
            "field 'action': expected an action name or code as text, got a number",
        ),
        Case(
            "object action",
            _line({"event": {"kind": "x"}, "created": 0}),
            REJECT,
            "field 'event': expected an action name or code as text, got an object",
        ),
        Case(
            "array action",
            _line({"eventName": ["Flow Updated"], "created": 0}),
            REJECT,
            "got an array",
        ),
        Case("boolean action", _line({"action": True, "created": 0}), REJECT, "got a boolean"),
        Case("blank action", _line({"action": " \t ", "created": 0}), REJECT, "blank"),
        Case("unknown action", _line({"action": "Quantum Flux Inverted", "created": 0}), OK),
        Case(
            "year 0",
            _line({"action": "Flow Updated", "created": "0000-01-01T00:00:00Z"}),
            REJECT,
            "year 0 is out of range",
        ),
        Case(
            "1e20 ms",
            _line({"action": "Flow Updated", "createdAt": 1e20}),
            REJECT,
            "out of range for epoch milliseconds",
        ),
        Case(
            "NaN text",
            _line({"action": "Flow Updated", "created": "NaN"}),
            REJECT,
            "'NaN' is not an ISO 8601 time",
        ),
        Case(
            "month 13",
            _line({"action": "Flow Updated", "created": "2026-13-45"}),
            REJECT,
            "month must be in 1..12",
        ),
        Case(
            "time as object",
            _line({"action": "Flow Updated", "time": {"s": 1}}),
            REJECT,
            "expected a time, got dict",
        ),
        Case(
            "boolean time",
            _line({"action": "Flow Updated", "created": False}),
            REJECT,
            "False is not an ISO 8601 time",
        ),
        # --- odd values elsewhere
        Case("ip 999.1.1.1", _event(ip="999.1.1.1"), OK),
        Case("ip ::ffff:1.2.3.4", _event(ip="::ffff:1.2.3.4"), OK),
        Case("ip localhost", _event(ip="localhost"), OK),
        Case("ip number", _event(clientIp=16843009), OK),
        Case("ip with zone", _event(remoteAddress="fe80::1%eth0"), OK),
        Case(
            "duplicate keys", b'{"action":"Flow Started","action":"Flow Stopped","created":0}', OK
        ),
        Case("very long id", _event(id="i" * 100_000), OK),
        Case("id as object", _event(id={"a": [1]}), OK),
        Case("keys with slash and tilde", _event(before={"a/b": {"~": 1}}, after={"a/b": {}}), OK),
        Case("non-list diff", _event(diff="everything changed"), OK),
        Case("hostile diff entries", _event(diff=[None, 1, {"path": {}}, {"op": "move"}]), OK),
        Case(
            "envelope holding a list",
            _line({"level": 30, "msg": "audit", "audit": []}),
            SKIP,
            "not an audit record",
        ),
        Case(
            "envelope without action",
            _line({"time": 0, "audit": {"created": 0}}),
            REJECT,
            "missing action",
        ),
        Case(
            "unicode everywhere",
            _line(
                {
                    "action": "Flüsse gelöscht 🚀",
                    "created": 0,
                    "user": {"name": "Zoë 🚀"},
                    "after": {"ключ": "значение"},
                }
            ),
            OK,
        ),
    ]


def main(argv: list[str]) -> int:
    """Write the corpus to the given file, one case a line."""
    if len(argv) != 1:
        print("usage: python -m tests.unit.corpus.hostile OUT", file=sys.stderr)
        return 2
    with Path(argv[0]).open("wb") as out:
        for case in cases():
            out.write(case.line.replace(b"\n", b" ") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
