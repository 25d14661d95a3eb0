"""Bytes to a JSON object, with a specific reason for every line that is not one.

orjson does the work; the standard library only steps in for numbers beyond a double
(``1e400``), which orjson refuses: such a number is kept as its text, because one odd value
must not lose an audit event, and a JSON document cannot hold infinity anyway.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_BOM = b"\xef\xbb\xbf"
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


class DecodeError(Exception):
    """The line is not a JSON object; the message is the rejection reason."""


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The line's object, ``None`` for a blank line; raises DecodeError with the reason."""
    if line[:1] == b"{" and line[-1:] == b"}":  # the usual line: no BOM, no CR, not blank
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            value = _recover(line, exc)
        if type(value) is dict:
            return value
        kind = _KINDS.get(type(value), "a number")
        raise DecodeError(f"line is {kind}, not a JSON object")
    if line.endswith(b"\r"):
        line = line[:-1]
    if line.startswith(_BOM):
        line = line[3:]
    if not line or (line[:1].isspace() and not line.strip()):  # no copy of every line
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        value = _recover(line, exc)
    if not isinstance(value, dict):
        kind = _KINDS.get(type(value), "a number")
        raise DecodeError(f"line is {kind}, not a JSON object")
    return value


def _recover(line: bytes, exc: orjson.JSONDecodeError) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise DecodeError(
            f"line is not valid UTF-8 (byte 0x{line[bad.start]:02x} at position {bad.start})"
        ) from None
    message = str(exc)
    if "infinity" not in message:
        raise DecodeError(f"not valid JSON: {message}")
    try:
        return json.loads(
            text, parse_float=_big_float, parse_int=_big_int, parse_constant=_no_constant
        )
    except RecursionError:
        raise DecodeError("not valid JSON: nested too deeply") from None
    except ValueError as again:
        raise DecodeError(f"not valid JSON: {again}") from None


def _big_float(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def _big_int(text: str) -> int | float | str:
    if len(text) <= 20:  # int() of a huge digit string is slow and capped by Python
        number = int(text)
        if _INT64_MIN <= number <= _UINT64_MAX:
            return number
    return _big_float(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
