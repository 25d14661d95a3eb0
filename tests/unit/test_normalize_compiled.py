"""The two builds of the per-line path: pure Python, or compiled with mypyc (setup.py).

These tests pin how the build is detected and the cases where compiled code once behaved
differently from the source; the differential test (test_compiled_differential.py) runs
both builds over the corpora and holds them to the same bytes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent import build
from agent.normalize import (
    Normalized,
    NormalizeOptions,
    Normalizer,
    Rejected,
    aliases,
    compiled,
)
from agent.normalize.redact import Redactor
from agent.normalize.timestamps import TimeError, from_epoch_ms, parse_time


class TestBuildDetection:
    def test_compiled_is_a_bool(self) -> None:
        assert type(compiled()) is bool

    def test_compiled_means_the_pipeline_is_an_extension_module(self) -> None:
        pipeline = importlib.import_module("agent.normalize.normalizer")
        assert compiled() == (not str(pipeline.__file__).endswith(".py"))
        assert compiled() == build.is_extension("agent.normalize.normalizer")

    def test_one_build_for_every_module(self) -> None:
        """Either every listed module is compiled or none is: never a mix."""
        assert build.builds() == {compiled()}
        assert build.build() == ("compiled" if compiled() else "pure")

    def test_uncompiled_modules_are_source(self) -> None:
        for name in ("agent.normalize", "agent.normalize.result", "agent.normalize.options"):
            assert not build.is_extension(name)

    def test_listed_modules_exist(self) -> None:
        """Every name in the list is a module of the source tree (setup.py compiles them)."""
        root = Path(str(build.__file__)).parent.parent
        for name in build.COMPILED_MODULES:
            assert (root / f"{name.replace('.', '/')}.py").is_file(), name


def test_meaning_indices_follow_the_table() -> None:
    """The ``M_*`` indices (constants, inlined by the compiled build) match ``MEANINGS``."""
    indices = [getattr(aliases, f"M_{name.upper()}") for name, _paths in aliases.MEANINGS]
    assert indices == list(range(len(aliases.MEANINGS)))


def _normalize(record: Any) -> Any:
    return Normalizer(NormalizeOptions(host_name="h"))(orjson.dumps(record))


class TestOnceDivergent:
    """Inputs on which the compiled build used to differ from the source."""

    def test_nested_containers_under_plain_keys(self) -> None:
        """A container value after a text value, under plain keys (a variable typed by its
        first assignment, a text, rejected the container in compiled code)."""
        redactor = Redactor()
        value = {"name": "x", "nested": {"list": [1, {"deep": "y"}]}, "other": [[]]}
        assert redactor.clean(value) is value
        secret = {"name": "x", "nested": {"password": "hunter2", "keep": [1]}}
        assert redactor.clean(secret) == {
            "name": "x",
            "nested": {"password": "[REDACTED]", "keep": [1]},
        }

    def test_event_with_nested_states(self) -> None:
        outcome = _normalize(
            {
                "action": "Flow Updated",
                "created": "2026-11-25T09:00:00Z",
                "before": {"name": "a", "stages": [{"id": 1, "options": {"x": 1}}]},
                "after": {"name": "b", "stages": [{"id": 1, "options": {"x": 2}}]},
            }
        )
        assert isinstance(outcome, Normalized)
        paths = [change["path"] for change in outcome.event["appmixer"]["audit"]["changes"]]
        assert paths == ["/name", "/stages/0/options/x"]

    def test_unexpected_error_after_decoding(self) -> None:
        """An error other than a decoding one becomes a rejection (one handler's variable
        must not be typed by the other's exception class)."""
        outcome = _normalize(
            {
                "action": "Flow Updated",
                "created": "2026-11-25T09:00:00Z",
                "diff": [{"path": "/a", "op": ["x"]}],
            }
        )
        assert outcome == Rejected("cannot normalize this line: TypeError: unhashable type: 'list'")

    def test_huge_integer_time_is_shown_as_written(self) -> None:
        """An integer stays an integer in the message (a ``float`` parameter would turn it
        into 9.223372036854776e+18 in compiled code)."""
        with pytest.raises(TimeError, match=r"^9223372036854775808 is out of range"):
            parse_time(2**63)
        with pytest.raises(TimeError, match=r"^9223372036854775808 is out of range"):
            from_epoch_ms(2**63)
        assert from_epoch_ms(1) == "1970-01-01T00:00:00.001Z"
        assert from_epoch_ms(1.5) == "1970-01-01T00:00:00.001Z"
