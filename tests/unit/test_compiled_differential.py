"""The compiled per-line path against the pure-Python reference, byte for byte.

The reference runs here, in the test process, which always imports the source; the compiled
build (``make compiled``, see tests/builds.py) runs the same driver,
:mod:`devtools.differential`, in a child interpreter. Both read the same lines and must write
the same records: the encoded bulk bodies (documents, change documents, chain values), and
the same rejections with the same reasons, fields and stages, the same skips. Inputs: the
sample, the hostile corpus, both scenario days, 100,000 simulated events, tight caps, and
records made by hypothesis. Without a compiled build this module skips, saying so; under
``CI=true`` it fails instead, since CI builds it (.ci/run).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.normalize import aliases
from devtools import differential
from devtools.scenarios import write_day
from devtools.simulate import write_events
from tests import builds
from tests.unit.corpus import hostile

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "appmixer-audit.sample.ndjson"
LINE_MAX = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def compiled_env() -> dict[str, str]:
    env = builds.compiled_env()
    if env is None:
        message = f"no compiled build in {builds.compiled_tree()} (make compiled)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must build the compiled path: {message}")
        pytest.skip(message)
    return env


def pure(files: list[Path], *, small_caps: bool = False) -> bytes:
    out = io.BytesIO()
    differential.run(files, out, small_caps=small_caps, line_max=LINE_MAX)
    return out.getvalue()


def compiled(env: dict[str, str], files: list[Path], *, small_caps: bool = False) -> bytes:
    command = [sys.executable, "-m", "devtools.differential", *map(str, files)]
    if small_caps:
        command.append("--small-caps")
    result = subprocess.run(
        command, capture_output=True, env={**os.environ, **env}, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout


def assert_identical(reference: bytes, other: bytes, lines: int) -> None:
    """Equal bytes, one record per line; on a difference, the first differing record."""
    expected, got = reference.splitlines(), other.splitlines()
    assert len(expected) == lines
    for number, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert have == want, (
            f"record {number} differs:\n pure     {want[:600]!r}\n compiled {have[:600]!r}"
        )
    assert len(got) == len(expected)
    assert other == reference


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


class TestCorpora:
    """Fixed inputs, each through both builds."""

    def test_the_sample(self, compiled_env: dict[str, str]) -> None:
        """The sample log from the Appmixer documentation."""
        lines = SAMPLE.read_bytes().count(b"\n")
        assert_identical(pure([SAMPLE]), compiled(compiled_env, [SAMPLE]), lines)

    def test_the_hostile_corpus(self, compiled_env: dict[str, str], tmp_path: Path) -> None:
        """Invalid UTF-8, NUL bytes, huge values, deep nesting, odd times: same outcomes."""
        cases = hostile.cases()
        corpus = write(tmp_path / "hostile.ndjson", [c.line.replace(b"\n", b" ") for c in cases])
        reference = pure([corpus])
        assert b'"rejected"' in reference
        assert b'"skipped"' in reference
        assert_identical(reference, compiled(compiled_env, [corpus]), len(cases))

    def test_the_hostile_corpus_over_a_small_line_cap(
        self, compiled_env: dict[str, str], tmp_path: Path
    ) -> None:
        """Over-long lines are rejections with their length, in both builds."""
        corpus = tmp_path / "hostile.ndjson"
        assert hostile.main([str(corpus)]) == 0
        command = ["--line-max", "4096"]
        reference = io.BytesIO()
        differential.run([corpus], reference, small_caps=False, line_max=4096)
        result = subprocess.run(
            [sys.executable, "-m", "devtools.differential", *command, str(corpus)],
            capture_output=True, env={**os.environ, **compiled_env}, timeout=600, check=False,
        )  # fmt: skip
        assert b"LINE_MAX_BYTES" in reference.getvalue()
        assert_identical(reference.getvalue(), result.stdout, len(hostile.cases()))

    @pytest.mark.parametrize("scenario", ["benign", "attack"])
    def test_a_scenario_day(
        self, compiled_env: dict[str, str], tmp_path: Path, scenario: Any
    ) -> None:
        """The detection rules' scenario days."""
        day = tmp_path / f"{scenario}.ndjson"
        with day.open("wb") as out:
            lines = write_day(out, scenario, seed=4)
        assert_identical(pure([day]), compiled(compiled_env, [day]), lines)

    def test_100000_simulated_events(self, compiled_env: dict[str, str], tmp_path: Path) -> None:
        """The whole catalog mix, in one chain stream, and a second file as a second stream."""
        first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
        with first.open("wb") as out:
            write_events(out, 90_000, seed=7)
        with second.open("wb") as out:
            write_events(out, 10_000, seed=8)
        files = [first, second]
        assert_identical(pure(files), compiled(compiled_env, files), 100_000)

    def test_tight_caps_and_extra_redaction(
        self, compiled_env: dict[str, str], tmp_path: Path
    ) -> None:
        """Diffs cut by depth, count and value length; configured redaction patterns."""
        simulated = tmp_path / "sim.ndjson"
        with simulated.open("wb") as out:
            write_events(out, 5_000, seed=9)
        corpus = write(
            tmp_path / "hostile.ndjson", [c.line.replace(b"\n", b" ") for c in hostile.cases()]
        )
        files = [SAMPLE, simulated, corpus]
        reference = pure(files, small_caps=True)
        assert b"truncated" in reference
        lines = sum(path.read_bytes().count(b"\n") for path in files)
        assert_identical(reference, compiled(compiled_env, files, small_caps=True), lines)


# --------------------------------------------------------------------------- properties

_ALIAS_KEYS = sorted({str(path[0]) for _, paths in aliases.MEANINGS for path in paths})
_KEYS = st.sampled_from(
    [*_ALIAS_KEYS, "before", "after", "password", "apiKey", "note", "audit", "msg", "time", "x"]
) | st.text(max_size=6)
_WORDS = st.sampled_from([
    "flow.updated", "Flow Updated", "user.login", "Login Failed", "user.created", "widget.zapped",
    "create", "update", "failure", "2026-11-25T09:14:03.120+02:00", "1764062043120", "tok-ab12",
    "Bearer abcdefghijklmnopqrstuvwxyz012345", "a@b.example", "10.1.2.3", "",
])  # fmt: skip
_SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | _WORDS
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=24,
)
_RECORDS = st.fixed_dictionaries(
    {}, optional={"action": _WORDS, "created": _WORDS | st.integers(), "id": _SCALARS}
).flatmap(lambda base: st.dictionaries(_KEYS, _VALUES, max_size=8).map(lambda r: {**r, **base}))
_LINES = _RECORDS.map(lambda r: json.dumps(r, ensure_ascii=False).encode()) | st.binary(max_size=40)


class _Server:
    """The compiled driver as a child: a line in, its record out, one stream throughout."""

    def __init__(self, env: dict[str, str], small_caps: bool) -> None:
        command = [sys.executable, "-m", "devtools.differential", "--serve"]
        if small_caps:
            command.append("--small-caps")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, **env}
        )
        self.reference = differential.preparer(small_caps=small_caps, line_max=LINE_MAX)
        self.offset = 0

    def both(self, line: bytes) -> tuple[bytes, bytes]:
        """The record of the reference and of the compiled build for the stream's next line."""
        raw = line.replace(b"\n", b" ") + b"\n"
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(raw)
        stdin.flush()
        got = _readline(stdout)
        key = differential.FileKey(1, 1, f"{1:016x}")
        want = differential.record(
            next(differential.lines_of(raw, key, "serve", LINE_MAX, self.offset)), self.reference
        )
        self.offset += len(raw)
        return want, got

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def _readline(stream: IO[bytes]) -> bytes:
    line = stream.readline()
    assert line.endswith(b"\n"), "the compiled driver stopped"
    return line


@pytest.fixture(scope="module", params=[False, True], ids=["default-caps", "tight-caps"])
def server(request: pytest.FixtureRequest, compiled_env: dict[str, str]) -> Iterator[_Server]:
    served = _Server(compiled_env, small_caps=request.param)
    yield served
    served.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_LINES, min_size=1, max_size=4))
def test_any_record_gives_the_same_bytes(server: _Server, lines: list[bytes]) -> None:
    """Records from the alias keys with values of every JSON type (and raw bytes), one
    chain stream across all examples: the same record from both builds, line after line."""
    for line in lines:
        want, got = server.both(line)
        assert got == want
