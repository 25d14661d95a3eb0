"""``appmixer-audit normalize``: documents on stdout, rejections on stderr, exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from cli import EXIT_OK, EXIT_REJECTED, cli
from devtools.simulate import write_events

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "appmixer-audit.sample.ndjson"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("APPMIXER_AUDIT_"):
            monkeypatch.delenv(name)


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout_bytes, result.stderr_bytes


class TestNormalizeCommand:
    def test_sample_file(self) -> None:
        """The sample gives 12 documents, 1 skip, 2 rejections with reasons, and exit 3."""
        code, out, err = _run("normalize", "--host-name", "pod-a", str(SAMPLE))
        assert code == EXIT_REJECTED
        docs = [orjson.loads(line) for line in out.splitlines()]
        assert len(docs) == 12
        assert all(doc["log"]["file"]["path"] == str(SAMPLE.resolve()) for doc in docs)
        assert all(doc["host"]["name"] == "pod-a" for doc in docs)
        lines = err.decode().splitlines()
        assert lines[-1] == "12 normalized, 1 skipped, 2 rejected"
        rejections = [orjson.loads(line) for line in lines[:-1]]
        assert [(r["line"], r["field"]) for r in rejections] == [(14, None), (15, "created")]
        assert rejections[1]["reason"].startswith("field 'created': 'not a date'")
        offsets = [len(line) + 1 for line in SAMPLE.read_bytes().splitlines()]
        assert rejections[0]["offset"] == sum(offsets[:13])
        assert docs[3]["log"]["offset"] == sum(offsets[:3])

    def test_stdin(self) -> None:
        """``-`` (or no argument) reads stdin; a clean input exits 0."""
        lines = b"".join(line for line in SAMPLE.read_bytes().splitlines(keepends=True)[:3])
        code, out, err = _run("normalize", "-", stdin=lines)
        assert code == EXIT_OK
        assert len(out.splitlines()) == 3
        assert orjson.loads(out.splitlines()[0])["log"]["file"]["path"] == "-"
        assert err.decode().strip() == "3 normalized, 0 skipped, 0 rejected"
        code, out, _ = _run("normalize", stdin=lines)
        assert (code, len(out.splitlines())) == (EXIT_OK, 3)

    def test_invalid_utf8_is_a_clear_rejection(self) -> None:
        """Binary input is read as bytes and rejected with a reason, not a crash."""
        code, _out, err = _run("normalize", stdin=b'{"action":"\xff"}\n')
        assert code == EXIT_REJECTED
        assert "not valid UTF-8" in orjson.loads(err.splitlines()[0])["reason"]

    def test_with_changes(self) -> None:
        """--with-changes wraps every document with its target and id, changes included."""
        code, out, _ = _run("normalize", "--with-changes", "--namespace", "prod", str(SAMPLE))
        assert code == EXIT_REJECTED
        rows = [orjson.loads(line) for line in out.splitlines()]
        targets = {row["_index"] for row in rows}
        assert targets == {"logs-appmixer.audit-prod", "logs-appmixer.audit_changes-prod"}
        events = [row for row in rows if row["_index"] == "logs-appmixer.audit-prod"]
        assert len(events) == 12
        assert all(row["_id"] == row["_source"]["event"]["id"] for row in events)
        first_change = next(row for row in rows if row["_index"].endswith("changes-prod"))
        assert first_change["_id"] == "6745a1f0c1d2e3f405060701:0"
        assert first_change["_source"]["appmixer"]["change"]["index"] == 0

    def test_redaction_options(self) -> None:
        """Extra redaction patterns from the command line apply."""
        line = b'{"action":"Flow Updated","created":0,"after":{"ssn":"123","note":"pin=42"}}\n'
        args = ("normalize", "--redact-key", "^ssn$", "--redact-value", r"(?P<keep>pin=)\d+")
        _code, out, _ = _run(*args, stdin=line)
        after = orjson.loads(out)["appmixer"]["audit"]["after"]
        assert after == {"ssn": "[REDACTED]", "note": "pin=[REDACTED]"}

    def test_diff_options(self) -> None:
        """Diff caps from the command line apply."""
        line = orjson.dumps(
            {"action": "Flow Updated", "created": 0, "after": dict.fromkeys("abcd", 1)}
        )
        _code, out, _ = _run("normalize", "--diff-max-changes", "2", stdin=line + b"\n")
        audit = orjson.loads(out)["appmixer"]["audit"]
        assert (len(audit["changes"]), audit["changes_truncated"]) == (2, True)

    def test_config_file(self, tmp_path: Path) -> None:
        """Settings can come from a TOML config file."""
        config = tmp_path / "agent.toml"
        config.write_text('namespace = "fromfile"\nhost_name = "pod-f"\n')
        _code, out, _ = _run(
            "normalize",
            "--config",
            str(config),
            stdin=SAMPLE.read_bytes().splitlines(keepends=True)[0],
        )
        doc = orjson.loads(out.splitlines()[0])
        assert doc["data_stream"]["namespace"] == "fromfile"
        assert doc["host"]["name"] == "pod-f"

    def test_bad_pattern_is_a_usage_error(self) -> None:
        """An invalid regex is reported in one line with exit status 2."""
        result = subprocess.run(
            [sys.executable, "-m", "agent", "normalize", "--redact-value", "("],
            input=b"",
            capture_output=True,
            check=False,
        )
        assert result.returncode == 2
        assert b"invalid setting redact_values (--redact-value ['(']): '(' is not a valid" in (
            result.stderr
        )

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be opened is a clear error, not a traceback."""
        result = CliRunner().invoke(cli, ["normalize", str(tmp_path / "nope.ndjson")])
        assert result.exit_code != 0
        assert "nope.ndjson" in result.output

    def test_simulated_stream_round_trip(self, tmp_path: Path) -> None:
        """Simulated traffic normalizes completely; noise lines are skipped and counted."""
        path = tmp_path / "audit.ndjson"
        with path.open("wb") as out:
            write_events(out, 400, seed=5, noise=0.1)
        code, out, err = _run("normalize", str(path))
        assert code == EXIT_OK
        assert len(out.splitlines()) == 400
        normalized, skipped, rejected = (int(part.split()[0]) for part in err.decode().split(","))
        assert (normalized, rejected) == (400, 0)
        assert skipped > 0
        assert b"[REDACTED]" in out
