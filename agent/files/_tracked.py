"""One tracked file: its open descriptor, identity, read position and unread bytes.

A source is read with ``os.pread`` at explicit offsets on a descriptor held open, so a file
renamed or deleted after it was opened is still read to its end, and no shared file
position can drift. Bytes past the last newline stay in ``buf`` until their line completes.

A line may not grow beyond ``line_max`` bytes in memory. Once the unfinished line in ``buf``
is longer, the source switches to reading *through* it: chunk by chunk, keeping only where
it started, how far it has been read and its first :data:`HEAD_BYTES` bytes, until its
newline appears. It is then returned as one :class:`Line` whose ``oversized`` is its length
and whose ``data`` is only its head, for the dead-letter file; the checkpoint moves past
it like past any other line. So a giant or sparse file costs ``line_max`` plus one read
chunk of memory, however long its line, and reading it through is charged to its share of
the byte budget, so it never starves the other files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from agent.files.identity import FileKey
from common.value import Value

# Unreturned bytes kept between reads per file; more is dropped and read again when needed,
# so memory stays bounded however many files are tracked.
KEEP_BUFFERED = 64 * 1024
# Smallest read: small budgets still read efficiently sized blocks.
MIN_READ = 64 * 1024
# Bytes of an over-long line kept for its dead letter.
HEAD_BYTES = 512
DEFAULT_LINE_MAX = 4 * 1024 * 1024


class Line(Value):
    """One complete line of a file, with where it came from (for checkpoints and ids).

    ``generation`` is the file identity's generation when the line was read
    (:mod:`agent.files.facts`): an acknowledgement of an older one no longer counts.
    ``oversized`` is an over-long line's length (``data`` then holds only its first bytes).
    A value, not frozen for speed (see :class:`chain.link.Head`).
    """

    __slots__ = ("data", "end", "generation", "key", "offset", "oversized", "path")
    FIELDS: ClassVar[tuple[str, ...]] = (
        "key",
        "path",
        "offset",
        "end",
        "data",
        "oversized",
        "generation",
    )

    def __init__(
        self,
        key: FileKey,
        path: str,
        offset: int,
        end: int,
        data: bytes,
        *,
        oversized: int = 0,
        generation: int = 0,
    ) -> None:
        self.key = key
        self.path = path
        self.offset = offset
        self.end = end
        self.data = data
        self.oversized = oversized
        self.generation = generation


@dataclass(slots=True)
class ReadThrough:
    """An over-long line being read through: where it starts, how far, its first bytes."""

    start: int
    read_to: int
    head: bytes


class Budget:
    """What one ``read`` call may still return, in lines and bytes."""

    __slots__ = ("bytes", "lines")

    def __init__(self, lines: int, size: int) -> None:
        self.lines = lines
        self.bytes = size

    def left(self) -> bool:
        return self.lines > 0 and self.bytes > 0


@dataclass(eq=False)
class TrackedFile:
    """Reading state of one file (one device + inode) on the reader thread."""

    path: str
    fd: int | None
    device: int
    inode: int
    size: int
    mtime_ns: int
    changed_at: float
    seen_end: int = 0  # highest offset known to have existed: below it means truncated
    key: FileKey | None = None
    generation: int = 0  # taken at each identification (agent.files.facts)
    offset: int = 0  # first byte of the next line not yet returned
    buf: bytearray = field(default_factory=bytearray)  # bytes read from `offset` on
    attached: bool = True  # a matched path still leads to this file
    deleted: bool = False
    fresh: bool = False  # restarted after a truncation: registry entries are stale
    carry: list[Line] = field(default_factory=list)  # lines read before a truncation
    through: ReadThrough | None = None  # an over-long line being read through

    @property
    def ident(self) -> tuple[int, int]:
        return (self.device, self.inode)

    @property
    def read_end(self) -> int:
        if self.through is not None:
            return self.through.read_to
        return self.offset + len(self.buf)

    def drained(self) -> bool:
        """True when no complete line is left to return (a partial last line may remain)."""
        if self.carry:
            return False
        if self.key is None:
            return True
        return self.read_end >= self.size and b"\n" not in self.buf

    def partial(self) -> int:
        """Bytes of an unterminated last line, when everything before it was read."""
        if self.key is None:
            return self.size
        if self.drained():
            return max(0, self.size - self.offset)
        return 0

    def restart(self, size: int) -> None:
        """Start over after a truncation; complete lines already read stay, as ``carry``."""
        self.carry.extend(self.split_buffered())
        self.key = None
        self.offset = 0
        self.buf = bytearray()
        self.through = None
        self.seen_end = size
        self.fresh = True

    def split_buffered(self) -> list[Line]:
        """The complete lines already in ``buf`` (used when the file under them changed)."""
        lines: list[Line] = []
        if self.key is None:
            return lines
        pos = 0
        while (newline := self.buf.find(b"\n", pos)) >= 0:
            lines.append(self._line(pos, newline))
            pos = newline + 1
        return lines

    def take(
        self,
        count: int,
        budget: Budget,
        out: list[Line],
        read_chunk: int,
        line_max: int = DEFAULT_LINE_MAX,
    ) -> bool:
        """Append up to ``count`` complete lines to ``out``; False once nothing more is there.

        A line longer than the remaining byte budget is left for the next call, except as the
        first line of a call, so one huge line can never stall the file. A line longer than
        ``line_max`` is read through and returned as its head (see the module docstring).
        """
        if not budget.left():
            return not self.drained()
        while self.carry and count > 0 and budget.left():
            line = self.carry.pop(0)
            out.append(line)
            budget.lines -= 1
            budget.bytes -= len(line.data)
            count -= 1
        if self.key is None or self.fd is None:
            return bool(self.carry)
        pos = 0
        search = 0
        try:
            while count > 0 and budget.left():
                if self.through is not None:
                    finished = self._read_through(budget, out, read_chunk)
                    if finished is None:
                        return False
                    count -= finished
                    continue
                newline = self.buf.find(b"\n", search)
                if newline < 0:
                    self._consume(pos)
                    pos = 0
                    if len(self.buf) > line_max:
                        self._start_read_through()
                        search = 0
                        continue
                    search = len(self.buf)
                    want = min(read_chunk, max(MIN_READ, budget.bytes + 1))
                    chunk = os.pread(self.fd, want, self.read_end)
                    if not chunk:
                        return False
                    self.buf += chunk
                    self.seen_end = max(self.seen_end, self.read_end)
                    continue
                if newline - pos > line_max:
                    head = bytes(self.buf[pos : pos + HEAD_BYTES])
                    out.append(self._over_long(self.offset + pos, self.offset + newline + 1, head))
                    budget.lines -= 1
                    count -= 1
                    pos = search = newline + 1
                    continue
                if out and newline - pos > budget.bytes:
                    return True
                line = self._line(pos, newline)
                out.append(line)
                budget.lines -= 1
                budget.bytes -= len(line.data)
                count -= 1
                pos = search = newline + 1
            return True
        finally:
            self._consume(pos)

    def _read_through(self, budget: Budget, out: list[Line], read_chunk: int) -> int | None:
        """Read one chunk of an over-long line: 1 when it ended (and was appended to ``out``),
        0 when it goes on, None at the end of the file with no newline yet.

        The bytes after the newline become ``buf``, as if the line had been read normally.
        """
        through = self.through
        assert through is not None
        assert self.fd is not None
        chunk = os.pread(self.fd, read_chunk, through.read_to)
        if not chunk:
            return None
        budget.bytes -= len(chunk)  # reading through is charged to this file's share
        newline = chunk.find(b"\n")
        if newline < 0:
            through.read_to += len(chunk)
            self.seen_end = max(self.seen_end, through.read_to)
            return 0
        end = through.read_to + newline + 1
        out.append(self._over_long(through.start, end, through.head))
        budget.lines -= 1
        self.through = None
        self.offset = end
        self.buf = bytearray(chunk[newline + 1 :])
        self.seen_end = max(self.seen_end, self.read_end)
        return 1

    def _start_read_through(self) -> None:
        """The unfinished line in ``buf`` is too long: keep its head, drop the rest."""
        self.through = ReadThrough(self.offset, self.read_end, bytes(self.buf[:HEAD_BYTES]))
        self.buf = bytearray()

    def _over_long(self, start: int, end: int, head: bytes) -> Line:
        assert self.key is not None
        return Line(
            self.key, self.path, start, end, head,
            oversized=end - 1 - start, generation=self.generation,
        )  # fmt: skip

    def trim(self) -> None:
        """Drop a large buffer of already complete lines; they are cheap to read again."""
        if len(self.buf) > KEEP_BUFFERED and b"\n" in self.buf:
            self.buf = bytearray()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.buf = bytearray()

    def _consume(self, count: int) -> None:
        if count:
            del self.buf[:count]
            self.offset += count

    def _line(self, start: int, newline: int) -> Line:
        assert self.key is not None
        stop = newline - 1 if newline > start and self.buf[newline - 1] == 0x0D else newline
        return Line(
            key=self.key,
            path=self.path,
            offset=self.offset + start,
            end=self.offset + newline + 1,
            data=bytes(self.buf[start:stop]),
            generation=self.generation,
        )
