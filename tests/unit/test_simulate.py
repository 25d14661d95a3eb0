"""The simulator: realistic, deterministic Appmixer audit traffic over the whole catalog."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from agent.normalize import Normalized, NormalizeOptions, Normalizer, Skipped
from agent.normalize.catalog import CATALOG
from cli import cli
from devtools.simulate import (
    DEFAULT_START_MS,
    iter_events,
    start_for_end,
    weights,
    write_events,
)


def _lines(n: int, seed: int, **options: object) -> bytes:
    out = io.BytesIO()
    write_events(out, n, seed, **options)  # type: ignore[arg-type]
    return out.getvalue()


class TestIterEvents:
    def test_covers_the_whole_catalog(self) -> None:
        """Every catalog event occurs in a few thousand simulated events."""
        normalizer = Normalizer(NormalizeOptions(host_name="sim"))
        seen: Counter[str] = Counter()
        for record in iter_events(3000, seed=1):
            outcome = normalizer(orjson.dumps(record))
            assert isinstance(outcome, Normalized), outcome
            assert outcome.event["appmixer"]["audit"]["catalog"] is True
            seen[outcome.event["event"]["action"]] += 1
        assert set(seen) == {entry.code for entry in CATALOG} == set(weights())
        assert seen.most_common(1)[0][0] == "flow.updated"

    def test_variety_of_spellings(self) -> None:
        """Aliases, envelopes, precomputed diffs and secrets all occur."""
        text = b"\n".join(orjson.dumps(record) for record in iter_events(2000, seed=2))
        fragments = [
            b'"createdAt":', b'"timestamp":', b'"created":', b'"user":{', b'"actor":{',
            b'"userEmail":', b'"flow":{"id"', b'"audit":{', b'"diff":[', b'"op":"add"',
            b'"_id":', b'"eventName":', b"clientSecret", b"Bearer ", b"$2b$10$", b"sk_live_",
            b"xoxb-",
        ]  # fmt: skip
        for fragment in fragments:
            assert fragment in text, fragment

    def test_times_increase(self) -> None:
        """Event times increase from the start time."""
        normalizer = Normalizer(NormalizeOptions(host_name="sim"))
        times = []
        for record in iter_events(500, seed=3):
            outcome = normalizer(orjson.dumps(record))
            assert isinstance(outcome, Normalized)
            times.append(outcome.event["@timestamp"])
        assert times == sorted(times)
        assert times[0] > "2026-11-25T08:00:00.000Z"

    def test_secrets_never_survive(self) -> None:
        """Simulated secrets are all redacted by the normalizer."""
        normalizer = Normalizer(NormalizeOptions(host_name="sim"))
        for record in iter_events(1000, seed=4):
            outcome = normalizer(orjson.dumps(record))
            assert isinstance(outcome, Normalized)
            text = orjson.dumps([outcome.event, outcome.changes])
            for marker in (b"Bearer A", b"$2b$10$", b"sk_live_", b"xoxb-", b"pw-"):
                assert marker not in text

    def test_noise(self) -> None:
        """Noise adds service log lines on top of the exact number of audit events."""
        records = list(iter_events(1000, seed=5, noise=0.2))
        normalizer = Normalizer(NormalizeOptions(host_name="sim"))
        outcomes = [normalizer(orjson.dumps(record)) for record in records]
        assert sum(isinstance(outcome, Normalized) for outcome in outcomes) == 1000
        assert 100 < sum(isinstance(outcome, Skipped) for outcome in outcomes) < 300


class TestDeterminism:
    def test_same_seed_same_bytes(self) -> None:
        """The same seed and options give byte-identical output."""
        assert _lines(500, 7) == _lines(500, 7)
        assert _lines(200, 7, noise=0.1) == _lines(200, 7, noise=0.1)

    def test_other_seed_other_bytes(self) -> None:
        """Another seed gives another stream."""
        assert _lines(50, 7) != _lines(50, 8)

    def test_cli_is_deterministic(self, tmp_path: Path) -> None:
        """``simulate`` writes the same file twice for one seed, appending to --out."""
        runner = CliRunner()
        first = runner.invoke(cli, ["simulate", "--events", "100", "--seed", "3"])
        second = runner.invoke(cli, ["simulate", "-n", "100", "--seed", "3"])
        assert first.exit_code == second.exit_code == 0
        assert first.stdout_bytes == second.stdout_bytes == _lines(100, 3)
        out = tmp_path / "audit.log"
        for _ in range(2):
            result = runner.invoke(cli, ["simulate", "-n", "10", "--seed", "1", "--out", str(out)])
            assert result.exit_code == 0
        assert out.read_bytes() == _lines(10, 1) * 2

    def test_start_time(self) -> None:
        """--start moves the stream in time; the default start is fixed."""
        first = orjson.loads(_lines(1, 1).splitlines()[0])
        later = orjson.loads(_lines(1, 1, start_ms=DEFAULT_START_MS + 86_400_000).splitlines()[0])
        assert first != later
        result = CliRunner().invoke(cli, ["simulate", "-n", "1", "--start", "garbage"])
        assert result.exit_code == 2

    @pytest.mark.parametrize("noise", [0.0, 0.3])
    def test_end_time_places_the_last_event(self, noise: float) -> None:
        """--end shifts the same events so the last one is at that time, to the millisecond."""
        end = "2026-11-27T12:00:00.000Z"
        result = CliRunner().invoke(
            cli, ["simulate", "-n", "200", "--seed", "5", "--noise", str(noise), "--end", end]
        )
        assert result.exit_code == 0, result.output
        normalizer = Normalizer(NormalizeOptions(host_name="sim"))
        times = [
            outcome.event["@timestamp"]
            for outcome in map(normalizer, result.stdout_bytes.splitlines())
            if isinstance(outcome, Normalized)
        ]
        assert len(times) == 200
        assert times[-1] == end
        assert times == sorted(times)
        # The same events as with the start it implies: only the clock moved.
        start_ms = start_for_end(1_795_780_800_000, 200, 5, noise=noise)
        assert result.stdout_bytes == _lines(200, 5, noise=noise, start_ms=start_ms)

    def test_end_excludes_start_and_rate(self) -> None:
        for extra in (["--start", "now"], ["--rate", "5"]):
            result = CliRunner().invoke(cli, ["simulate", "-n", "1", "--end", "now", *extra])
            assert result.exit_code == 2
            assert "--end places the last event" in result.output


class TestRate:
    def test_paced_and_flushed(self) -> None:
        """With a rate, lines are spaced by 1/rate seconds and each one is flushed."""
        now = [100.0]
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        class Recorder(io.BytesIO):
            flushes = 0

            def flush(self) -> None:
                Recorder.flushes += 1

        out = Recorder()
        written = write_events(out, 5, 1, rate=10.0, start_ms=0, clock=lambda: now[0], sleep=sleep)
        assert written == 5
        assert sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1])
        assert Recorder.flushes >= 5
