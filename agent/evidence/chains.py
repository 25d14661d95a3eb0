"""Chain state in the run loop: stepped as lines are read, persisted as they are acknowledged.

Three parts, each owned by one thread, keyed by the registry's file key strings (so this
module knows nothing of the file layer):

- :class:`Chains` (reader thread) steps each line, in read order. Its in-memory head per file
  runs ahead of acknowledgements. When a file is (re)started at an offset, the head comes from
  the persisted chain state recorded *at that very offset* (the registry entry of the file or
  of another file with the same content: a copy continues its original's chain); at offset 0
  it is the stream's genesis. So a line read again after a crash, a restart or a rotation gets
  the same chain values as the first time, and its replay is a 409, never a fork. If no state
  fits (a registry from before chains, or state lost), a new stream begins at that offset
  (``chain_restarted``): nothing is claimed that cannot be proven.
- :class:`Ledger` (sender thread) remembers each line's :class:`Place` until the line's file
  checkpoint passes it, then hands the head at the checkpoint to the registry, which writes it
  atomically with the offset. Events that have a place in the chain but never reach the index
  (refused by Elasticsearch, or not encodable) become :class:`Gap` s, recorded in the registry
  with the same acknowledgement, kept there until a signed checkpoint carrying them is stored.
- :class:`Signer` (sender thread) builds, signs and records checkpoints from the registry's
  persisted heads, every ``interval`` seconds when something changed, and at shutdown.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import orjson

from chain.checkpoint import ChainKey, Checkpoint, Gap, SignedHead
from chain.link import GENESIS, Head, step, stream_id
from common.atomic import append_line
from common.clock import utc_iso
from common.log import get_logger
from common.value import Value

log = get_logger(__name__)

LOCAL_NAME = "chain-checkpoints.ndjson"

# (file key, content id, offset) -> the chain head persisted at exactly that offset, if any
Resume = Callable[[str, str, int], Head | None]


class Place(Value):
    """A line's place: the head after it, and for an event line, its predecessor's hash.

    A value, not frozen for speed (see :class:`chain.link.Head`).
    """

    __slots__ = ("head", "prev")
    FIELDS: ClassVar[tuple[str, ...]] = ("head", "prev")

    def __init__(self, head: Head, prev: str | None = None) -> None:
        self.head = head
        self.prev = prev


class Origins(Protocol):
    """Where the copy relation between files is kept across restarts (the registry)."""

    def origin(self, key: str) -> str | None: ...

    def set_origin(self, key: str, origin: str) -> None: ...


class Chains:
    """Steps events into their stream's chain, in read order (reader thread only)."""

    def __init__(self, host: str, resume: Resume, origins: Origins | None = None) -> None:
        self.host = host
        self._resume = resume
        self._book = origins
        self._files: dict[str, tuple[int, Head]] = {}  # key -> (where the next line starts, head)
        self._origins: dict[str, str] = {}  # a copy's key -> the key of the file it copies

    def copied(
        self, key: str, original: str, at: int = 0, chain: dict[str, Any] | None = None
    ) -> None:
        """The file ``key`` is a copy of ``original`` (``copytruncate``), read from ``at``.

        It continues the original's stream rather than beginning one of its own, so lines
        the original already sent (unacknowledged when the agent stopped) get the very same
        chain values again, and their replay is a harmless 409. Read from its start, the
        stream is named after the original; read from ``at`` > 0, it continues from
        ``chain``, the original's head taken with its checkpoint ``at`` when the copy was
        found (the original's head may have moved on since, so it is not looked up later).
        """
        origin = self._origin_of(original) or original
        self._origins[key] = origin
        if self._book is not None:
            self._book.set_origin(key, origin)  # a restart before any ack still knows it
        head = head_at(chain, at) if at > 0 else None
        if head is not None:
            self._files[key] = (at, head)

    def _origin_of(self, key: str) -> str | None:
        found = self._origins.get(key)
        if found is None and self._book is not None:
            found = self._book.origin(key)
        return found

    def advance(
        self,
        key: str,
        content_id: str,
        offset: int,
        end: int,
        event: tuple[str, dict[str, Any]] | None,
    ) -> Place:
        """The chain after the line ``[offset, end)``; ``event`` (id, document) is chained."""
        known = self._files.get(key)
        head = known[1] if known is not None and known[0] == offset else None
        if head is None:
            head = self._start(key, content_id, offset)
        if event is None:
            self._files[key] = (end, head)
            return Place(head)
        prev = head.hash
        head = step(head, event[0], event[1])
        self._files[key] = (end, head)
        return Place(head, prev)

    def _start(self, key: str, content_id: str, offset: int) -> Head:
        if offset == 0:
            # A file read from its start is a stream of its own (its key: device, inode and
            # first line), so two unrelated files that begin with the same banner line are
            # two chains; a copy continuing its original from an offset resumes below.
            return Head.genesis(stream_id(self.host, self._origin_of(key) or key, 0))
        found = self._resume(key, content_id, offset)
        if found is not None:
            return found
        stream = stream_id(self.host, content_id, offset)
        log.warning("chain_restarted", key=key, offset=offset, stream=stream)
        return Head.genesis(stream)


class Ledger:
    """Entries of lines read but not yet past their file's checkpoint (sender thread only)."""

    def __init__(self, *, gaps: bool = True) -> None:
        self._lines: dict[str, dict[int, Place]] = {}
        self._refused: dict[str, dict[int, Gap]] = {}
        self._gaps = gaps  # without a signing key no checkpoint would ever carry them

    def note(self, key: str, end: int, entry: Place) -> None:
        self._lines.setdefault(key, {})[end] = entry

    def refused(self, key: str, end: int, reason: str) -> None:
        """The event of this line will not be in the index: a gap in its chain."""
        entry = self._lines.get(key, {}).get(end)
        if not self._gaps or entry is None or entry.prev is None:
            return
        head = entry.head
        gap = Gap(stream=head.stream, seq=head.seq, prev=entry.prev, hash=head.hash,
                  event_id=head.event_id, reason=reason[:200])  # fmt: skip
        self._refused.setdefault(key, {})[end] = gap

    def head(self, key: str, end: int) -> Head | None:
        """The head after the line of ``key`` ending at ``end``, if it is still here."""
        entry = self._lines.get(key, {}).get(end)
        return entry.head if entry is not None else None

    def settle(self, key: str, end: int) -> tuple[Head | None, list[Gap]]:
        """The head at ``end`` and the gaps up to it; forget the lines up to it."""
        lines = self._lines.get(key, {})
        entry = lines.get(end)
        past = []
        for noted in lines:  # read order: ends grow, except after a truncation (pruned later)
            if noted > end:
                break
            past.append(noted)
        for noted in past:
            del lines[noted]
        refused = self._refused.get(key, {})
        gaps = [refused.pop(e) for e in sorted(e for e in refused if e <= end)]
        return (entry.head if entry is not None else None), gaps


def chain_record(head: Head, at: int) -> dict[str, Any]:
    """The registry's chain state of a file: the head, valid at offset ``at``."""
    return {**head.as_dict(), "at": at}


def head_at(record: Any, offset: int) -> Head | None:
    """The head in a registry chain record, if it was taken at ``offset``."""
    if not isinstance(record, dict) or record.get("at") != offset:
        return None
    try:
        return Head.from_dict(record)
    except ValueError:
        return None


class Signer:
    """Signs the persisted heads every ``interval`` seconds, idle or not, and at a clean stop.

    Each checkpoint lists every stream the agent knows and continues the agent's own
    checkpoint chain (``epoch``, ``seq``, ``prev``), read back from the local copy at start,
    so a restarted agent goes on where it stopped. It is appended to the local copy first,
    then stored in the index; one that could not be stored is stored again, in order, before
    the next. Without a key (``key`` None) the checkpoints are unsigned and only carry gaps,
    so ``verify`` still knows which positions Elasticsearch refused.
    """

    def __init__(
        self,
        key: ChainKey | None,
        host: str,
        state_dir: Path,
        store: Callable[[Checkpoint], None],
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.key = key
        self.host = host
        self.local = Path(state_dir) / LOCAL_NAME
        self._store = store
        self.interval = interval
        self._clock = clock
        self._now = now
        self._last = clock()
        self._unstored: list[Checkpoint] = []
        self.stored = 0
        self.epoch, self.seq, self.prev = _resume_local(self.local)

    def due(self) -> bool:
        return self._clock() - self._last >= self.interval

    def rekey(self, key: ChainKey) -> None:
        """Sign with ``key`` from now on (the checkpoint chain goes on across the switch)."""
        self.key = key

    def checkpoint(
        self,
        heads: Iterable[tuple[Head, str | None]],
        gaps: Iterable[Gap],
        *,
        final: bool = False,
        pending: Iterable[Head] = (),
    ) -> list[Gap] | None:
        """Sign every head and the gaps; the gaps it carried, or None when not stored.

        ``pending`` are the heads at the ends of the replay windows: lines sent (by this run,
        or by one that was killed) and not acknowledged yet. Each stream's furthest one is
        signed with its head as ``pending_seq``/``pending_hash``: the events up to it may be
        in the index already, and ``verify`` accepts them when they lead to that hash.

        None when the checkpoint could not be stored in the index (it is then in the local
        file, and is stored again before the next one; the gaps are carried again too).
        Without a key and without gaps nothing is written.
        """
        self._last = self._clock()
        best: dict[str, tuple[Head, str | None]] = {}
        for head, path in heads:
            if head.seq > 0 and (head.stream not in best or head.seq > best[head.stream][0].seq):
                best[head.stream] = (head, path)
        ahead: dict[str, Head] = {}
        for head in pending:
            acked = best.get(head.stream)
            if (acked is None or head.seq > acked[0].seq) and (
                head.stream not in ahead or head.seq > ahead[head.stream].seq
            ):
                ahead[head.stream] = head
        for stream in ahead.keys() - best.keys():  # sent, nothing acknowledged yet
            best[stream] = (Head.genesis(stream), None)
        carried = list({(g.stream, g.seq): g for g in gaps}.values())
        if self.key is None and not carried:
            return None
        listed = [
            SignedHead(
                stream=h.stream,
                seq=h.seq,
                hash=h.hash,
                event_id=h.event_id,
                path=path,
                pending_seq=ahead[h.stream].seq if h.stream in ahead else None,
                pending_hash=ahead[h.stream].hash if h.stream in ahead else None,
            )
            for h, path in sorted(best.values(), key=lambda item: item[0].stream)
        ]
        when = utc_iso(self._now())
        checkpoint = Checkpoint(
            host=self.host, time=when, key_id=self.key.key_id if self.key else "",
            epoch=self.epoch, seq=self.seq + 1, prev=self.prev, interval=self.interval,
            final=final, heads=listed if self.key else [], gaps=carried,
        )  # fmt: skip
        if self.key is not None:
            checkpoint = checkpoint.signed(self.key)
        append_local(self.local, checkpoint)
        self.seq, self.prev = checkpoint.seq, checkpoint.digest()
        self._unstored.append(checkpoint)
        try:
            while self._unstored:
                self._store(self._unstored[0])
                self._unstored.pop(0)
        except Exception as exc:
            log.warning("chain_checkpoint_failed", error=str(exc), heads=len(listed),
                        waiting=len(self._unstored))  # fmt: skip
            return None
        self.stored += 1
        log.info("chain_checkpoint_stored", heads=len(listed), gaps=len(carried),
                 seq=checkpoint.seq, final=final)  # fmt: skip
        return carried


def _resume_local(path: Path) -> tuple[str, int, str]:
    """(epoch, seq, digest) of the last checkpoint in the local copy; a new epoch if none.

    Read from the end (the copy grows by one line an interval, for as long as the agent
    runs); a torn last line, from a crash mid-append, is passed over.
    """
    for line in _lines_from_the_end(path):
        try:
            last = Checkpoint.from_document(orjson.loads(line))
        except (orjson.JSONDecodeError, ValueError):
            continue
        if last.chained:
            return last.epoch, last.seq, last.digest()
        break  # a checkpoint from before the chains: a new one begins
    return secrets.token_hex(8), 0, GENESIS


def _lines_from_the_end(path: Path, chunk: int = 1 << 16) -> Iterator[bytes]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(0, os.SEEK_END)
        pos, rest = handle.tell(), b""
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            handle.seek(pos)
            lines = (handle.read(step) + rest).split(b"\n")
            rest = lines[0]
            yield from (line for line in reversed(lines[1:]) if line.strip())
        if rest.strip():
            yield rest


def append_local(path: Path, checkpoint: Checkpoint) -> None:
    """Append one checkpoint to the local NDJSON copy, durably (``common.atomic``)."""
    append_line(path, orjson.dumps(checkpoint.to_document()))


def read_local_copy(path: Path) -> tuple[list[tuple[str, Checkpoint]], list[tuple[str, str]]]:
    """An agent's local copy for ``verify``: (``<path>:<line>``, checkpoint) for each good
    line, (``<path>:<line>``, why) for each malformed one; ``ValueError`` if unreadable."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    good: list[tuple[str, Checkpoint]] = []
    bad: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            good.append((where, Checkpoint.from_document(orjson.loads(line))))
        except (orjson.JSONDecodeError, ValueError) as exc:
            bad.append((where, str(exc)))
    return good, bad


def read_local_checkpoints(path: Path, *, missing_ok: bool = False) -> Iterator[Checkpoint]:
    """The checkpoints of a local copy; a malformed line is a ``ValueError`` naming it."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        if missing_ok:
            return
        raise ValueError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield Checkpoint.from_document(orjson.loads(line))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path} line {number}: {exc}") from None
