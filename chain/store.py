"""Where chain state persists: ``STATE_DIR/chain.json``, written just before each checkpoint.

The registry says, per file, up to which offset every line is acknowledged; this file says
what the chain head was *at* that offset. It is written right before every registry write
(:class:`ChainedStore` wraps the registry's ``save``), and keeps, per file, every
(offset, head) pair recorded since the last registry write that succeeded, that one
included. Whatever moment a crash picks, the offset in the registry on disk has its head in
this file on disk, so a restart resumes every chain exactly where its checkpoint is.

Gaps (events refused by Elasticsearch) are recorded here with the acknowledgement that
settles them and stay until a signed checkpoint carrying them has been stored. A crash in
between at worst records a gap twice; checkpoints carry each (stream, seq) once.

The format is versioned JSON; an unreadable file is an error naming it, as for the registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson

from chain.checkpoint import ChainKey, Checkpoint, Gap
from chain.link import Head
from chain.state import Chains, Ledger, Signer, chain_record, head_at
from common.atomic import read_state, write_atomically
from common.log import get_logger

log = get_logger("chain")

FORMAT = 1
NAME = "chain.json"
FORGET_AFTER = 7 * 86_400.0  # a file whose chain has not moved this long is forgotten

K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)


class ChainStateError(ValueError):
    """``chain.json`` exists but cannot be used; the message names it and the way out."""


class ChainFile:
    """Per file key: the recent (offset, head) pairs, its content id and path; and gaps."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(state_dir) / NAME
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, Any]] = {}
        self._gaps: dict[tuple[str, int], Gap] = {}
        self._dirty = False
        self._load()

    def lookup(self, content_id: str, offset: int) -> Head | None:
        """The head at ``offset`` of any file with this content (a copy shares its chain)."""
        with self._lock:
            for entry in self._files.values():
                if entry["content"] != content_id:
                    continue
                for record in entry["heads"]:
                    head = head_at(record, offset)
                    if head is not None:
                        return head
        return None

    def record(self, key: str, content_id: str, path: str, end: int, head: Head) -> None:
        with self._lock:
            entry = self._files.setdefault(key, {"content": content_id, "heads": []})
            heads = [r for r in entry["heads"] if r.get("at") != end]
            entry["heads"] = [*heads, chain_record(head, end)]
            entry["path"], entry["updated"] = path, self._clock()
            self._dirty = True

    def add_gaps(self, gaps: Iterable[Gap]) -> None:
        with self._lock:
            for gap in gaps:
                self._gaps[(gap.stream, gap.seq)] = gap
                self._dirty = True

    def clear_gaps(self, gaps: Iterable[Gap]) -> None:
        with self._lock:
            for gap in gaps:
                if self._gaps.pop((gap.stream, gap.seq), None) is not None:
                    self._dirty = True

    def gaps(self) -> list[Gap]:
        with self._lock:
            return list(self._gaps.values())

    def heads(self) -> list[tuple[Head, str | None]]:
        """The latest acknowledged head of every file, with the file's path."""
        found = []
        with self._lock:
            for entry in self._files.values():
                if entry["heads"]:
                    head = head_at(entry["heads"][-1], entry["heads"][-1]["at"])
                    if head is not None:
                        found.append((head, entry.get("path")))
        return found

    def save(self) -> None:
        """Write atomically when something changed; forget long-still files first."""
        with self._lock:
            cutoff = self._clock() - FORGET_AFTER
            stale = [k for k, e in self._files.items() if e.get("updated", 0.0) < cutoff]
            for key in stale:
                del self._files[key]
            if not self._dirty and not stale:
                return
            document = {
                "version": FORMAT,
                "files": self._files,
                "gaps": [gap.model_dump(mode="json") for gap in self._gaps.values()],
            }
            data = orjson.dumps(document)
            self._dirty = False
        try:
            write_atomically(self.path, data)
        except BaseException:
            with self._lock:
                self._dirty = True
            raise

    def saved(self) -> None:
        """The registry now holds the latest offsets: older pairs are no longer needed."""
        with self._lock:
            for entry in self._files.values():
                del entry["heads"][:-1]

    def _load(self) -> None:
        raw = read_state(self.path, "the chain state", ChainStateError)
        if raw is None:
            return
        try:
            document = orjson.loads(raw)
            if not isinstance(document, dict) or document.get("version") != FORMAT:
                raise ValueError(f"format version is not {FORMAT}")
            files = document["files"]
            if not isinstance(files, dict) or not all(
                isinstance(e, dict) and isinstance(e.get("content"), str)
                and isinstance(e.get("heads"), list) for e in files.values()
            ):  # fmt: skip
                raise ValueError("files are malformed")
            gaps = [Gap.model_validate(item) for item in document.get("gaps", [])]
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ChainStateError(
                f"the chain state {self.path} is unreadable ({exc}); move it aside to start "
                "new chains from the current checkpoints (verify then sees new streams begin)"
            ) from None
        self._files = files
        self._gaps = {(gap.stream, gap.seq): gap for gap in gaps}


class _Position(Protocol):
    acked: int


class CheckpointStore(Protocol[K_contra]):
    """What the checkpointer writes to: the registry (``agent.files.Registry``), or the
    registry wrapped by :class:`ChainedStore`."""

    def get(self, key: K_contra, /) -> _Position | None: ...

    def ack(self, key: K_contra, path: str, end: int, /) -> None: ...

    def mark_sent(self, key: K_contra, path: str, end: int, /) -> None: ...

    def reset(self, key: K_contra, path: str, /) -> None: ...

    def move(self, key: K_contra, path: str, /) -> None: ...

    def forget(self, older_than: float) -> int: ...

    def save(self) -> None: ...


class ChainedStore(Generic[K]):
    """The registry, with the chain head recorded at each acknowledged offset, and
    ``chain.json`` written before every registry write."""

    def __init__(
        self,
        inner: CheckpointStore[K],
        chains: ChainFile,
        ledger: Ledger,
        content_of: Callable[[K], str],
    ) -> None:
        self.inner = inner
        self.chains = chains
        self.ledger = ledger
        self._content_of = content_of

    def get(self, key: K, /) -> _Position | None:
        return self.inner.get(key)

    def ack(self, key: K, path: str, end: int, /) -> None:
        head, gaps = self.ledger.settle(str(key), end)
        if gaps:
            self.chains.add_gaps(gaps)
        if head is not None:
            self.chains.record(str(key), self._content_of(key), path, end, head)
        self.inner.ack(key, path, end)

    def mark_sent(self, key: K, path: str, end: int, /) -> None:
        self.inner.mark_sent(key, path, end)

    def reset(self, key: K, path: str, /) -> None:
        self.inner.reset(key, path)

    def move(self, key: K, path: str, /) -> None:
        self.inner.move(key, path)

    def forget(self, older_than: float) -> int:
        return self.inner.forget(older_than)

    def save(self) -> None:
        self.chains.save()
        self.inner.save()
        self.chains.saved()


class Keeper:
    """The run loop's one handle on tamper evidence: chains, ledger, state file, signer.

    Without a key the events are still chained (the links alone show a deletion or an edit
    in the middle of a stream), but nothing is signed and no gap is kept: ``verify`` then
    counts every event as unsigned. ``store`` writes one checkpoint to the index.
    """

    def __init__(
        self,
        host: str,
        state_dir: Path,
        key: ChainKey | None,
        store: Callable[[Checkpoint], None],
        *,
        interval: float = 60.0,
        rotation: Callable[[], ChainKey | None] | None = None,
    ) -> None:
        self.file = ChainFile(state_dir)
        self.chains = Chains(host, lambda _key, content, offset: self.file.lookup(content, offset))
        self.ledger = Ledger(gaps=key is not None)
        self.signer = (
            Signer(key, host, state_dir, store, interval=interval) if key is not None else None
        )
        self._rotation = rotation
        if key is None:
            log.warning("chain_unsigned", reason="no CHAIN_KEY_FILE: checkpoints are not signed")

    def wrap(self, registry: CheckpointStore[K], content_of: Callable[[K], str]) -> ChainedStore[K]:
        return ChainedStore(registry, self.file, self.ledger, content_of)

    def sign(self, *, force: bool = False) -> None:
        """Sign and store a checkpoint when one is due (or now, at shutdown); switch keys
        first when ``rotation`` offers a new one."""
        if self.signer is None:
            return
        new_key = self._rotation() if self._rotation is not None else None
        if new_key is not None:
            self._rotate(self.signer, new_key)
        elif force or self.signer.due():
            self._checkpoint(self.signer)
        if force:
            self.file.save()

    def _rotate(self, signer: Signer, key: ChainKey) -> None:
        """Close the old key's record, then sign every head under the new one.

        The last checkpoint under the old key covers everything acknowledged so far, so no
        event is left unsigned across the switch; the first under the new key signs all
        heads, as a restart with the new key would, so ``verify --since`` the rotation with
        the new key alone has a signed start for every stream.
        """
        old_key_id = signer.key.key_id
        self._checkpoint(signer)
        signer.rekey(key)
        self._checkpoint(signer)
        log.info("chain_key_rotated", old_key_id=old_key_id, key_id=key.key_id)

    def _checkpoint(self, signer: Signer) -> None:
        carried = signer.checkpoint(self.file.heads(), self.file.gaps())
        if carried:
            self.file.clear_gaps(carried)
