"""The dead-letter file: where a line goes when it cannot become an indexed document.

A line is dead-lettered when it cannot be decoded, when the normalizer rejects it, or when
Elasticsearch refuses the document for its content (a mapping conflict, a 400). Only then is
it acknowledged, so the write must be durable first: every :meth:`DeadLetterFile.write` ends
with ``fsync`` (and a new file's directory entry is synced too). If the write fails, the
error propagates and the caller does not acknowledge; the caller retries the write (through
the agent's one retry loop), so the line is never lost.

A dead letter is made by one of two named constructors, one per kind of refusal:
:meth:`DeadLetter.rejected` for a line the normalizer refused (its stage, decode or
normalize, comes with the rejection) and :meth:`DeadLetter.refused` for a document
Elasticsearch refused (stage index, with Elasticsearch's status, type and reason).

One JSON object per line (NDJSON), so ``jq`` and a re-ingest script read it directly. The
original line is kept verbatim: as text when it is UTF-8, otherwise base64 with
``line_encoding: "base64"``. Files are named ``dead-letter-YYYY-MM-DD[.N].ndjson`` (UTC):
a new file each day and whenever the current one reaches ``max_bytes``.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from agent.files import Line
from agent.normalize import Rejected
from common.atomic import fsync_directory
from common.clock import utc_iso
from common.stage import Stage
from indexer.outcomes import Refused

__all__ = ["DeadLetter", "DeadLetterFile", "Stage", "read_dead_letters"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_NAME = re.compile(r"^dead-letter-(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.ndjson$")


@dataclass(frozen=True)
class DeadLetter:
    """One refused line and why; ``error_type`` is Elasticsearch's, for index rejections."""

    line: bytes
    path: str
    offset: int
    stage: Stage
    reason: str
    error_type: str | None = None
    field: str | None = None
    event_id: str | None = None
    change_id: str | None = None
    target: str | None = None
    status: int | None = None
    length: int | None = None  # an over-long line's length; ``line`` holds its first bytes

    @classmethod
    def rejected(cls, line: Line, rejection: Rejected) -> DeadLetter:
        """A line the normalizer refused; the stage (decode or normalize) is the rejection's."""
        return cls(
            line.data, line.path, line.offset, rejection.stage, rejection.reason,
            field=rejection.field, length=line.oversized or None,
        )  # fmt: skip

    @classmethod
    def refused(
        cls,
        line: Line,
        refusal: Refused,
        *,
        event_id: str,
        target: str,
        change_id: str | None = None,
    ) -> DeadLetter:
        """A document Elasticsearch refused for its content: the event's, or one change's."""
        return cls(
            line.data, line.path, line.offset, Stage.INDEX, refusal.describe(),
            error_type=refusal.error_type, event_id=event_id, change_id=change_id,
            target=target, status=refusal.status,
        )  # fmt: skip

    def to_record(self, when: datetime) -> dict[str, Any]:
        data = self.line[:-1] if self.line.endswith(b"\n") else self.line
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(data).decode("ascii"), "base64"
        record: dict[str, Any] = {
            "time": utc_iso(when),
            "stage": str(self.stage),
            "reason": self.reason,
            "path": self.path,
            "offset": self.offset,
            "line": text,
            "line_encoding": encoding,
        }
        optional = {
            "error_type": self.error_type,
            "field": self.field,
            "event_id": self.event_id,
            "change_id": self.change_id,
            "target": self.target,
            "status": self.status,
            "length": self.length,
        }
        record.update({key: value for key, value in optional.items() if value is not None})
        return record


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeadLetterFile:
    """Appends dead letters durably; rotates by UTC day and by size."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.directory = directory
        self.max_bytes = max_bytes
        self._now = now
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._day = ""
        self._index = 0
        self._size = 0
        self.written = 0

    @property
    def path(self) -> Path | None:
        """The file currently appended to, if one is open."""
        return self._file_path(self._day, self._index) if self._file is not None else None

    def _file_path(self, day: str, index: int) -> Path:
        suffix = f".{index}" if index else ""
        return self.directory / f"dead-letter-{day}{suffix}.ndjson"

    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Append ``letters`` and fsync; return only once they are on disk."""
        if not letters:
            return
        when = self._now()
        payload = b"".join(orjson.dumps(letter.to_record(when)) + b"\n" for letter in letters)
        with self._lock:
            handle = self._target(when, len(payload))
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
            self._size += len(payload)
            self.written += len(letters)

    def _target(self, when: datetime, incoming: int) -> IO[bytes]:
        day = when.astimezone(UTC).date().isoformat()
        if self._file is not None and day == self._day:
            if self._size == 0 or self._size + incoming <= self.max_bytes:
                return self._file
            self._open(day, self._index + 1)
            return self._require_open()
        self._open(day, self._last_index(day))
        if self._size and self._size + incoming > self.max_bytes:
            self._open(day, self._index + 1)
        return self._require_open()

    def _require_open(self) -> IO[bytes]:
        if self._file is None:  # pragma: no cover - _open either sets it or raises
            raise RuntimeError("dead-letter file is not open")
        return self._file

    def _last_index(self, day: str) -> int:
        if not self.directory.is_dir():
            return 0
        found = [0]
        for entry in self.directory.iterdir():
            match = _NAME.match(entry.name)
            if match and match.group(1) == day:
                found.append(int(match.group(2) or 0))
        return max(found)

    def _open(self, day: str, index: int) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._file_path(day, index)
        created = not path.exists()
        handle = path.open("ab")
        if created:
            fsync_directory(self.directory)
        self._file, self._day, self._index = handle, day, index
        self._size = handle.tell()

    def close(self) -> None:
        with_file, self._file = self._file, None
        if with_file is not None:
            with_file.close()


def read_dead_letters(directory: Path) -> list[dict[str, Any]]:
    """Every record under ``directory``, oldest file first (for tests and re-ingest tools)."""
    records: list[dict[str, Any]] = []
    if not directory.is_dir():
        return records

    def order(path: Path) -> tuple[str, int]:
        match = _NAME.match(path.name)
        return (match.group(1), int(match.group(2) or 0)) if match else ("", 0)

    files = sorted((p for p in directory.iterdir() if _NAME.match(p.name)), key=order)
    for path in files:
        with path.open("rb") as handle:
            records.extend(orjson.loads(line) for line in handle if line.strip())
    return records
