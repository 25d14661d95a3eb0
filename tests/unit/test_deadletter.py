"""The dead-letter file: durable NDJSON records, verbatim lines, rotation by day and size."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from agent.deadletter import DeadLetter, DeadLetterFile, Stage, read_dead_letters
from agent.files import FileKey, Line
from agent.normalize import NormalizeOptions, Normalizer, Rejected
from indexer.outcomes import Refused


class FakeNow:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 23, 59, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def letter(line: bytes = b'{"a":1}\n', offset: int = 0, **kwargs: object) -> DeadLetter:
    fields: dict[str, object] = {
        "line": line,
        "path": "/logs/audit.log",
        "offset": offset,
        "stage": Stage.NORMALIZE,
        "reason": "created: not a date",
    }
    fields.update(kwargs)
    return DeadLetter(**fields)  # type: ignore[arg-type]


class TestDeadLetterFile:
    def test_record_fields(self, tmp_path: Path) -> None:
        """A record keeps the line (without its newline), file, offset, stage, reason, time."""
        dlq = DeadLetterFile(tmp_path, now=FakeNow())
        dlq.write([letter(offset=42, field="created")])
        (record,) = read_dead_letters(tmp_path)
        assert record == {
            "time": "2026-11-25T23:59:00.000Z",
            "stage": "normalize",
            "reason": "created: not a date",
            "path": "/logs/audit.log",
            "offset": 42,
            "line": '{"a":1}',
            "line_encoding": "utf-8",
            "field": "created",
        }
        assert dlq.written == 1

    def test_index_rejection_keeps_elasticsearch_words(self, tmp_path: Path) -> None:
        """An index rejection carries Elasticsearch's error type, status, target and event id."""
        dlq = DeadLetterFile(tmp_path, now=FakeNow())
        dlq.write(
            [
                letter(
                    stage=Stage.INDEX,
                    reason="failed to parse field [user.id]",
                    error_type="document_parsing_exception",
                    status=400,
                    event_id="e1",
                    target="logs-appmixer.audit-default",
                )
            ]
        )
        (record,) = read_dead_letters(tmp_path)
        assert record["stage"] == "index"
        assert record["error_type"] == "document_parsing_exception"
        assert (record["status"], record["event_id"]) == (400, "e1")
        assert record["target"] == "logs-appmixer.audit-default"

    def test_non_utf8_line_is_base64_with_a_flag(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 survive exactly, base64-encoded and flagged."""
        raw = b'{"x":"\xff\xfe"}'
        dlq = DeadLetterFile(tmp_path, now=FakeNow())
        dlq.write([letter(line=raw + b"\n", stage=Stage.DECODE, reason="not UTF-8")])
        (record,) = read_dead_letters(tmp_path)
        assert record["line_encoding"] == "base64"
        assert base64.b64decode(record["line"]) == raw

    def test_write_is_fsynced(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every write ends with an fsync of the file before returning (so acking is safe)."""
        synced: list[int] = []
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
        dlq = DeadLetterFile(tmp_path, now=FakeNow())
        dlq.write([letter()])
        dlq.write([letter()])
        assert len(synced) >= 2

    def test_appends_across_instances(self, tmp_path: Path) -> None:
        """A restarted agent appends to today's file instead of overwriting it."""
        now = FakeNow()
        DeadLetterFile(tmp_path, now=now).write([letter(offset=1)])
        DeadLetterFile(tmp_path, now=now).write([letter(offset=2)])
        assert [r["offset"] for r in read_dead_letters(tmp_path)] == [1, 2]
        assert len(list(tmp_path.iterdir())) == 1

    def test_rotates_by_day(self, tmp_path: Path) -> None:
        """A new UTC day starts a new file."""
        now = FakeNow()
        dlq = DeadLetterFile(tmp_path, now=now)
        dlq.write([letter(offset=1)])
        now.now += timedelta(minutes=2)
        dlq.write([letter(offset=2)])
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["dead-letter-2026-11-25.ndjson", "dead-letter-2026-11-26.ndjson"]
        assert [r["offset"] for r in read_dead_letters(tmp_path)] == [1, 2]

    def test_rotates_by_size(self, tmp_path: Path) -> None:
        """When the next write would pass max_bytes, a numbered file follows; nothing is split."""
        dlq = DeadLetterFile(tmp_path, max_bytes=1024, now=FakeNow())
        for offset in range(10):
            dlq.write([letter(line=b"x" * 300, offset=offset)])
        files = sorted(tmp_path.iterdir())
        assert len(files) > 3
        assert all(p.stat().st_size <= 1024 for p in files)
        assert [r["offset"] for r in read_dead_letters(tmp_path)] == list(range(10))
        for path in files:
            for raw in path.read_bytes().splitlines():
                orjson.loads(raw)

    def test_restart_continues_the_latest_numbered_file(self, tmp_path: Path) -> None:
        """After rotation by size, a new instance appends to the highest-numbered file."""
        now = FakeNow()
        first = DeadLetterFile(tmp_path, max_bytes=1024, now=now)
        for offset in range(5):
            first.write([letter(line=b"y" * 300, offset=offset)])
        latest = first.path
        first.close()
        second = DeadLetterFile(tmp_path, max_bytes=1024, now=now)
        second.write([letter(offset=99)])
        assert second.path == latest
        assert read_dead_letters(tmp_path)[-1]["offset"] == 99

    def test_empty_write_creates_nothing(self, tmp_path: Path) -> None:
        """Writing no letters touches no file."""
        DeadLetterFile(tmp_path / "dlq", now=FakeNow()).write([])
        assert not (tmp_path / "dlq").exists()

    def test_failed_write_raises(self, tmp_path: Path) -> None:
        """A write that cannot reach the disk raises, so the caller never acknowledges."""
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        dlq = DeadLetterFile(blocker / "dlq", now=FakeNow())
        with pytest.raises((FileExistsError, NotADirectoryError)):
            dlq.write([letter()])

    def test_tiny_max_bytes_refused(self, tmp_path: Path) -> None:
        """A size bound under 1 KiB would rotate on every record; it is refused."""
        with pytest.raises(ValueError, match="max_bytes"):
            DeadLetterFile(tmp_path, max_bytes=10)


LINE = Line(FileKey(1, 2, "0" * 32), "/logs/audit.log", 100, 120, b'{"action":"x"}')


class TestNamedConstructors:
    @pytest.mark.parametrize("stage", [Stage.DECODE, Stage.NORMALIZE])
    def test_rejected_takes_the_stage_of_the_rejection(self, stage: Stage) -> None:
        """The stage is the one the normalizer set, whatever the wording of the reason."""
        dead = DeadLetter.rejected(LINE, Rejected("line is whatever", "created", stage))
        assert (dead.stage, dead.reason, dead.field) == (stage, "line is whatever", "created")
        assert (dead.line, dead.path, dead.offset) == (LINE.data, LINE.path, LINE.offset)

    @pytest.mark.parametrize(
        ("line", "stage"),
        [
            (b"not json at all", Stage.DECODE),
            (b"[1]", Stage.DECODE),
            (b"\xff\xfe", Stage.DECODE),
            (b'{"action":"flow.start","createdAt":"nonsense"}', Stage.NORMALIZE),
            (b'{"action":"  ","createdAt":"2026-01-01T00:00:00Z"}', Stage.NORMALIZE),
        ],
    )
    def test_normalizer_stages_are_set_where_the_rejection_is_made(
        self, line: bytes, stage: Stage
    ) -> None:
        """Decode failures say decode, unusable records say normalize; no text is matched."""
        rejected = Normalizer(NormalizeOptions())(line)
        assert isinstance(rejected, Rejected)
        assert rejected.stage is stage
        assert DeadLetter.rejected(LINE, rejected).stage is stage

    def test_refused_is_an_index_dead_letter_with_elasticsearch_words(self) -> None:
        """A refusal by Elasticsearch becomes stage index, with status, type and target."""
        refusal = Refused(400, "document_parsing_exception", "failed to parse [user.id]")
        dead = DeadLetter.refused(
            LINE, refusal, event_id="e1", change_id="e1-c0", target="logs-x-changes"
        )
        assert dead.stage is Stage.INDEX
        assert dead.reason == "document_parsing_exception: failed to parse [user.id]"
        assert (dead.error_type, dead.status) == ("document_parsing_exception", 400)
        assert (dead.event_id, dead.change_id, dead.target) == ("e1", "e1-c0", "logs-x-changes")
