"""One tracked file: its open descriptor, identity, read position and unread bytes.

A source is read with ``os.pread`` at explicit offsets on a descriptor held open, so a file
renamed or deleted after it was opened is still read to its end, and no shared file
position can drift. Bytes past the last newline stay in ``buf`` until their line completes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agent.files.identity import FileKey

# Unreturned bytes kept between reads per file; more is dropped and read again when needed,
# so memory stays bounded however many files are tracked.
KEEP_BUFFERED = 64 * 1024
# Smallest read: small budgets still read efficiently sized blocks.
MIN_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Line:
    """One complete line of a file, with where it came from (for checkpoints and ids)."""

    key: FileKey
    path: str
    offset: int
    end: int
    data: bytes


class Budget:
    """What one ``read`` call may still return, in lines and bytes."""

    __slots__ = ("bytes", "lines")

    def __init__(self, lines: int, size: int) -> None:
        self.lines = lines
        self.bytes = size

    def left(self) -> bool:
        return self.lines > 0 and self.bytes > 0


@dataclass(eq=False)
class Source:
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
    offset: int = 0  # first byte of the next line not yet returned
    buf: bytearray = field(default_factory=bytearray)  # bytes read from `offset` on
    attached: bool = True  # a matched path still leads to this file
    deleted: bool = False
    fresh: bool = False  # restarted after a truncation: registry entries are stale
    carry: list[Line] = field(default_factory=list)  # lines read before a truncation

    @property
    def ident(self) -> tuple[int, int]:
        return (self.device, self.inode)

    @property
    def read_end(self) -> int:
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

    def take(self, count: int, budget: Budget, out: list[Line], read_chunk: int) -> bool:
        """Append up to ``count`` complete lines to ``out``; False once nothing more is there.

        A line longer than the remaining byte budget is left for the next call, except as the
        first line of a call, so one huge line can never stall the file.
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
                newline = self.buf.find(b"\n", search)
                if newline < 0:
                    self._consume(pos)
                    pos = 0
                    search = len(self.buf)
                    want = min(read_chunk, max(MIN_READ, budget.bytes + 1))
                    chunk = os.pread(self.fd, want, self.read_end)
                    if not chunk:
                        return False
                    self.buf += chunk
                    self.seen_end = max(self.seen_end, self.read_end)
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
        )
