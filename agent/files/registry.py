"""The registry: per file identity, how far every line is acknowledged (the checkpoint).

It lives in ``STATE_DIR/registry.json`` as versioned JSON. Writes are atomic (a temp file in
the same directory, fsync, rename, fsync of the directory), so a crash leaves either the old
or the new checkpoint, never a mix. A file that cannot be understood is an error naming the
file: silently starting over would re-read every log from offset 0.

Positions move forward only; the one way back is :meth:`Registry.reset`, for a file truncated
in place whose first line (so whose identity) did not change.

One writer: only the checkpointer (``agent.acks.Checkpointer``) calls the methods that change
it; the tailer only reads (``get``, ``find_fingerprint``) and reports what it sees as facts.

It is also where the hash chains persist (one state file, one retention rule): each entry
may carry ``chain``, the chain head *at* its acknowledged offset, set by the same
acknowledgement and written in the same atomic write, so a restart resumes every chain
exactly where its checkpoint is; and the document carries ``gaps``, events with a place in
their chain that never reached the index, kept until a stored checkpoint declares them.
Both are opaque here (``agent.evidence.keeper`` gives them meaning); an entry forgotten takes its
chain head with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from agent.files.identity import FileKey, key_at
from common.atomic import read_state, write_atomically
from common.log import get_logger

FORMAT_VERSION = 1
REGISTRY_NAME = "registry.json"
KEPT_RUNS = 4
_TEMP_PREFIX = REGISTRY_NAME + "."
_TEMP_SUFFIX = ".tmp"

log = get_logger(__name__)


class RegistryError(Exception):
    """The registry file exists but cannot be used; the message names the file and the fix."""


@dataclass
class FilePosition:
    """Checkpoint of one file identity.

    Every line before ``acked`` is acknowledged (indexed or dead-lettered); lines in
    ``[acked, sent)`` may already be in the index, so a replay of them must check first.
    """

    key: str
    path: str
    acked: int
    sent: int
    updated: float
    chain: dict[str, Any] | None = None  # the chain head at ``acked`` (``agent.evidence.keeper``)
    pending: dict[str, Any] | None = None  # the chain head at ``sent``, while ahead of acked

    @property
    def content_id(self) -> str:
        """The content id of the key (equal for a file, its renamed self and its copies)."""
        return FileKey.parse(self.key).content_id


class Registry:
    """Checkpoints of all files: read by the tailer, written by the checkpointer alone.

    Methods are thread-safe. Readers get copies of positions, never the live objects.
    """

    def __init__(self, state_dir: Path, *, fingerprint_bytes: int = 1024) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / REGISTRY_NAME
        self._fingerprint_bytes = fingerprint_bytes
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._entries: dict[str, FilePosition] = {}
        self._gaps: dict[tuple[str, int], dict[str, Any]] = {}
        # a copy's key -> the key of the file it copies (its chain stream is the original's)
        self._origins: dict[str, str] = {}
        # the ids of the last runs, newest first: their requests may still be executing
        self._runs: list[str] = []
        self._dirty = False
        self._remove_stray_temp_files()
        self._load()

    # --- runs

    def begin_run(self, run_id: str) -> list[str]:
        """Record ``run_id`` as the newest run; the ids of the runs before it.

        The node executes a bulk request to the end even when its client was killed, so a
        request of an earlier run can still be writing when this one starts looking up its
        replay window. Several earlier ids are kept, not one: a run killed before it could
        wait for its predecessor's requests leaves that wait to the next.
        """
        with self._lock:
            earlier = [run for run in self._runs if run != run_id]
            self._runs = [run_id, *earlier][:KEPT_RUNS]
            self._dirty = True
            return earlier

    def window_extended(self) -> float | None:
        """When (wall clock) a replay window still open was last extended or acknowledged
        into; None when every file's sent lines are acknowledged."""
        with self._lock:
            open_ = [entry.updated for entry in self._entries.values() if entry.sent > entry.acked]
            return max(open_) if open_ else None

    # --- reading

    def get(self, key: FileKey) -> FilePosition | None:
        with self._lock:
            entry = self._entries.get(str(key))
            return replace(entry) if entry is not None else None

    def find_fingerprint(self, fingerprint: str) -> FilePosition | None:
        """The furthest-acknowledged entry whose content starts with the same first line.

        Entries sharing a fingerprint are the same stream of lines (a file and its copies),
        so the largest ``acked`` of any of them is safe for all.
        """
        with self._lock:
            matches = [e for e in self._entries.values() if e.content_id == fingerprint]
            if not matches:
                return None
            best = max(matches, key=lambda e: (e.acked, e.updated))
            return replace(best)

    def positions(self) -> list[FilePosition]:
        with self._lock:
            return [replace(entry) for entry in self._entries.values()]

    # --- changing (in memory; save() persists)

    def mark_sent(
        self, key: FileKey, path: str, end: int, /, pending: dict[str, Any] | None = None
    ) -> None:
        """Record that lines up to ``end`` may have been sent; never moves back.

        ``pending`` is the chain head at ``end``: what may be in the index beyond the
        acknowledged head, so a checkpoint can vouch for it before it is acknowledged.
        """
        with self._lock:
            entry = self._entry(key, path)
            if end > entry.sent:
                entry.sent = end
                entry.pending = pending
                self._touch(entry)

    def ack(
        self, key: FileKey, path: str, end: int, /, chain: dict[str, Any] | None = None
    ) -> None:
        """Record that every line before ``end`` is acknowledged; never moves back.

        ``chain`` is the chain head at ``end``; it is kept only with the offset it belongs to.
        """
        with self._lock:
            entry = self._entry(key, path)
            if end > entry.acked:
                entry.acked = end
                entry.sent = max(entry.sent, end)
                entry.chain = chain
                if entry.acked >= entry.sent:
                    entry.pending = None
                self._touch(entry)
            elif end == entry.acked and chain is not None and entry.chain != chain:
                entry.chain = chain
                self._touch(entry)

    def chain_records(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(key, content id, path, chain head record) of every entry that has one."""
        with self._lock:
            return [
                (e.key, e.content_id, e.path, dict(e.chain))
                for e in self._entries.values()
                if e.chain is not None
            ]

    def pending_records(self) -> list[dict[str, Any]]:
        """The chain heads at ``sent`` of the entries whose lines beyond ``acked`` may be
        in the index (sent, by this run or one that stopped, and not yet acknowledged)."""
        with self._lock:
            return [
                dict(e.pending)
                for e in self._entries.values()
                if e.pending is not None and e.sent > e.acked
            ]

    def adopt_chain(self, key: str, chain: dict[str, Any]) -> None:
        """Give an entry that has none the chain head at its offset (an upgrade in place)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.chain is None:
                entry.chain = dict(chain)
                self._dirty = True

    def add_gaps(self, gaps: list[dict[str, Any]]) -> None:
        with self._lock:
            for gap in gaps:
                self._gaps[(str(gap.get("stream")), int(gap.get("seq", 0)))] = dict(gap)
                self._dirty = True

    def origin(self, key: str) -> str | None:
        """The key of the file ``key`` is a copy of, if the tailer found it to be one."""
        with self._lock:
            return self._origins.get(key)

    def set_origin(self, key: str, origin: str) -> None:
        """Remember that ``key`` copies ``origin``, across restarts (kept with the entry)."""
        with self._lock:
            if self._origins.get(key) != origin:
                self._origins[key] = origin
                self._dirty = True

    def clear_gaps(self, gaps: list[tuple[str, int]]) -> None:
        with self._lock:
            for gap in gaps:
                if self._gaps.pop(gap, None) is not None:
                    self._dirty = True

    def gaps(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(gap) for gap in self._gaps.values()]

    def reset(self, key: FileKey, path: str) -> None:
        """Start a file over at offset 0: it was truncated in place with the same first line."""
        with self._lock:
            entry = self._entry(key, path)
            entry.acked = entry.sent = 0
            entry.chain = entry.pending = None
            self._touch(entry)

    def move(self, key: FileKey, path: str) -> None:
        """Note a file's new name (after a rename), so :meth:`forget` still finds it on disk."""
        with self._lock:
            entry = self._entries.get(str(key))
            if entry is not None and entry.path != path:
                entry.path = path
                self._dirty = True

    def forget(self, older_than: float) -> int:
        """Drop entries of files gone from disk and untouched for ``older_than`` seconds.

        A file is gone when its recorded path no longer holds the same device, inode and
        first line. Returns how many entries were dropped.
        """
        cutoff = time.time() - older_than
        with self._lock:
            stale = [e for e in self._entries.values() if e.updated < cutoff]
        gone = [e.key for e in stale if str(key_at(e.path, self._fingerprint_bytes)) != e.key]
        with self._lock:
            dropped = 0
            for key in gone:
                entry = self._entries.get(key)
                if entry is not None and entry.updated < cutoff:
                    del self._entries[key]
                    self._origins.pop(key, None)
                    dropped += 1
            if dropped:
                self._dirty = True
        if dropped:
            log.info("registry_forgot", entries=dropped, older_than=older_than)
        return dropped

    # --- persistence

    def save(self) -> None:
        """Write the registry atomically; a no-op when nothing changed since the last save."""
        with self._save_lock:
            with self._lock:
                if not self._dirty:
                    return
                document: dict[str, Any] = {
                    "version": FORMAT_VERSION,
                    "files": [_encode(entry) for entry in self._entries.values()],
                }
                if self._gaps:
                    document["gaps"] = list(self._gaps.values())
                if self._origins:
                    document["origins"] = dict(self._origins)
                if self._runs:
                    document["runs"] = list(self._runs)
                self._dirty = False
            try:
                self._write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
            except BaseException:
                with self._lock:
                    self._dirty = True
                raise

    def _write(self, data: bytes) -> None:
        write_atomically(self.path, data)

    def _load(self) -> None:
        raw = read_state(self.path, "the registry", RegistryError)
        if raw is None:
            return
        try:
            document = orjson.loads(raw)
            entries = _decode(document)
            gaps = _decode_gaps(document)
            origins = _decode_origins(document)
            runs = _decode_runs(document)
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise RegistryError(
                f"the registry {self.path} is unreadable ({exc}); fix or move it aside "
                "(without it every file is read again from the start)"
            ) from exc
        self._entries = {entry.key: entry for entry in entries}
        self._gaps = {(str(g["stream"]), int(g["seq"])): g for g in gaps}
        self._origins = origins
        self._runs = runs

    def _remove_stray_temp_files(self) -> None:
        """A temp file left by a crash mid-save is never the registry; remove it."""
        if not self.state_dir.is_dir():
            return
        for stray in self.state_dir.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                stray.unlink()
                log.info("registry_temp_removed", path=str(stray))

    def _entry(self, key: FileKey, path: str) -> FilePosition:
        name = str(key)
        entry = self._entries.get(name)
        if entry is None:
            entry = FilePosition(key=name, path=path, acked=0, sent=0, updated=time.time())
            self._entries[name] = entry
            self._dirty = True
        elif entry.path != path:
            entry.path = path
            self._dirty = True
        return entry

    def _touch(self, entry: FilePosition) -> None:
        entry.updated = time.time()
        self._dirty = True


def _encode(entry: FilePosition) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "key": entry.key,
        "path": entry.path,
        "acked": entry.acked,
        "sent": entry.sent,
        "updated": entry.updated,
    }
    if entry.chain is not None:
        encoded["chain"] = entry.chain
    if entry.pending is not None:
        encoded["pending"] = entry.pending
    return encoded


def _decode(document: Any) -> list[FilePosition]:
    """Validate a whole registry document; any doubt is an error, never a guess."""
    if not isinstance(document, dict):
        raise ValueError("the top level is not an object")
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(f"format version {version!r} is not {FORMAT_VERSION}")
    files = document.get("files")
    if not isinstance(files, list):
        raise ValueError('"files" is not a list')
    return [_decode_entry(item) for item in files]


def _decode_runs(document: dict[str, Any]) -> list[str]:
    runs = document.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(run, str) for run in runs):
        raise ValueError('"runs" is not a list of run ids')
    return runs


_FIELDS = ("key", "path", "acked", "sent", "updated")


def _decode_entry(item: Any) -> FilePosition:
    if not isinstance(item, dict):
        raise ValueError("an entry is not an object")
    missing = [name for name in _FIELDS if name not in item]
    if missing:
        raise ValueError(f"an entry lacks {', '.join(missing)}")
    key, path, acked, sent, updated = (item[name] for name in _FIELDS)
    if not isinstance(key, str) or not isinstance(path, str):
        raise ValueError("an entry's key or path is not a string")
    FileKey.parse(key)
    if not _is_offset(acked) or not _is_offset(sent) or sent < acked:
        raise ValueError(f"entry {key}: offsets acked={acked!r} sent={sent!r} are invalid")
    if isinstance(updated, bool) or not isinstance(updated, int | float):
        raise ValueError(f"entry {key}: updated={updated!r} is not a time")
    chain, pending = item.get("chain"), item.get("pending")
    if chain is not None and not isinstance(chain, dict):
        raise ValueError(f"entry {key}: chain is not an object")
    if pending is not None and not isinstance(pending, dict):
        raise ValueError(f"entry {key}: pending is not an object")
    return FilePosition(
        key=key, path=path, acked=acked, sent=sent, updated=float(updated), chain=chain,
        pending=pending,
    )  # fmt: skip


def _decode_origins(document: dict[str, Any]) -> dict[str, str]:
    origins = document.get("origins", {})
    if not isinstance(origins, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in origins.items()
    ):
        raise ValueError('"origins" is not an object of keys')
    return dict(origins)


def _decode_gaps(document: dict[str, Any]) -> list[dict[str, Any]]:
    gaps = document.get("gaps", [])
    if not isinstance(gaps, list) or not all(
        isinstance(g, dict) and isinstance(g.get("stream"), str) and isinstance(g.get("seq"), int)
        for g in gaps
    ):
        raise ValueError('"gaps" is not a list of gaps')
    return gaps


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
