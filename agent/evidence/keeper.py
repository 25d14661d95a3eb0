"""Where chain state persists: in the registry, with the checkpoint it belongs to.

The registry (``agent.files.Registry``) says, per file, up to which offset every line is
acknowledged; the same entry holds the chain head *at* that offset, set by the same
acknowledgement (:class:`ChainedStore` takes it from the ledger) and written in the same
atomic write. Whatever moment a crash picks, the offset on disk has its head on disk, so a
restart resumes every chain exactly where its checkpoint is; and an entry the registry
forgets (a file long gone) takes its head with it: one state file, one retention rule.

Gaps (events with a place in their chain that never reached the index) are kept in the
registry document with the acknowledgement that settles them, until a checkpoint carrying
them is stored. A crash in between at worst declares a gap twice; checkpoints carry each
(stream, seq) once.

The previous version kept the heads in ``STATE_DIR/chain.json``; :func:`upgrade` moves them
into the registry once, at start, and removes that file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson
from pydantic import ValidationError

from agent.evidence.chains import Chains, Ledger, Signer, chain_record, head_at
from chain.checkpoint import ChainKey, Checkpoint, Gap
from chain.link import Head
from common.atomic import read_state
from common.log import get_logger

log = get_logger(__name__)

LEGACY_NAME = "chain.json"  # the previous version's chain state, upgraded in place

K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)


class ChainStateError(ValueError):
    """``chain.json`` exists but cannot be used; the message names it and the way out."""


class _Position(Protocol):
    acked: int


class _Entry(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def acked(self) -> int: ...

    @property
    def chain(self) -> dict[str, Any] | None: ...


class CheckpointStore(Protocol[K_contra]):
    """What the checkpointer writes to: the registry (``agent.files.Registry``), or the
    registry wrapped by :class:`ChainedStore`."""

    def get(self, key: K_contra, /) -> _Position | None: ...

    def ack(
        self, key: K_contra, path: str, end: int, /, chain: dict[str, Any] | None = None
    ) -> None: ...

    def mark_sent(
        self, key: K_contra, path: str, end: int, /, pending: dict[str, Any] | None = None
    ) -> None: ...

    def reset(self, key: K_contra, path: str, /) -> None: ...

    def move(self, key: K_contra, path: str, /) -> None: ...

    def forget(self, older_than: float) -> int: ...

    def save(self) -> None: ...


class ChainRegistry(CheckpointStore[K_contra], Protocol[K_contra]):
    """The registry as the chains use it: heads kept with offsets, gaps until signed."""

    def positions(self) -> Iterable[_Entry]: ...

    def chain_records(self) -> list[tuple[str, str, str, dict[str, Any]]]: ...

    def pending_records(self) -> list[dict[str, Any]]: ...

    def adopt_chain(self, key: str, chain: dict[str, Any]) -> None: ...

    def origin(self, key: str) -> str | None: ...

    def set_origin(self, key: str, origin: str) -> None: ...

    def add_gaps(self, gaps: list[dict[str, Any]]) -> None: ...

    def clear_gaps(self, gaps: list[tuple[str, int]]) -> None: ...

    def gaps(self) -> list[dict[str, Any]]: ...


class ChainView:
    """The chain state in the registry, read as heads and gaps."""

    def __init__(self, registry: ChainRegistry[Any]) -> None:
        self.registry = registry

    def lookup(self, content_id: str, offset: int, key: str | None = None) -> Head | None:
        """The head at ``offset`` of the file ``key`` itself, else of any file with this
        content (a copy continues its original's chain)."""
        records = self.registry.chain_records()
        own = [r for r in records if r[0] == key]
        for _key, content, _path, record in [*own, *records]:
            if content != content_id and _key != key:
                continue
            head = head_at(record, offset)
            if head is not None:
                return head
        return None

    def heads(self) -> list[tuple[Head, str | None]]:
        """The acknowledged head of every file, with the file's path."""
        found: list[tuple[Head, str | None]] = []
        for _key, _content, path, record in self.registry.chain_records():
            at = record.get("at")
            head = head_at(record, at) if isinstance(at, int) else None
            if head is not None:
                found.append((head, path))
        return found

    def pending(self) -> list[Head]:
        """The chain heads at the ends of the replay windows (sent, not yet acknowledged)."""
        found: list[Head] = []
        for record in self.registry.pending_records():
            at = record.get("at")
            head = head_at(record, at) if isinstance(at, int) else None
            if head is not None:
                found.append(head)
        return found

    def gaps(self) -> list[Gap]:
        found = []
        for item in self.registry.gaps():
            with contextlib.suppress(ValidationError):
                found.append(Gap.model_validate(item))
        return found

    def add_gaps(self, gaps: Iterable[Gap]) -> None:
        self.registry.add_gaps([gap.model_dump(mode="json") for gap in gaps])

    def clear_gaps(self, gaps: Iterable[Gap]) -> None:
        self.registry.clear_gaps([(gap.stream, gap.seq) for gap in gaps])


class ChainedStore(Generic[K]):
    """The registry, with the chain head recorded at each acknowledged offset (in the same
    entry, so the same atomic write) and the gaps each acknowledgement settles."""

    def __init__(self, inner: ChainRegistry[K], ledger: Ledger) -> None:
        self.inner = inner
        self.ledger = ledger

    def get(self, key: K, /) -> _Position | None:
        return self.inner.get(key)

    def ack(self, key: K, path: str, end: int, /, chain: dict[str, Any] | None = None) -> None:
        """Acknowledge up to ``end`` with the ledger's head there; ``chain`` is the head
        when the ledger has none (a copy inherits its original's head at its checkpoint)."""
        head, gaps = self.ledger.settle(str(key), end)
        if gaps:
            self.inner.add_gaps([gap.model_dump(mode="json") for gap in gaps])
        record = chain_record(head, end) if head is not None else chain
        self.inner.ack(key, path, end, chain=record)

    def mark_sent(
        self, key: K, path: str, end: int, /, pending: dict[str, Any] | None = None
    ) -> None:
        """Record the replay window with the chain head at its end (the ledger has it:
        every line sent was noted first), so a checkpoint taken before the lines are
        acknowledged, in this run or the next, can vouch for what may be in the index.
        ``pending`` is that head when the ledger has none (a copy inherits its original's)."""
        head = self.ledger.head(str(key), end)
        record = chain_record(head, end) if head is not None else pending
        self.inner.mark_sent(key, path, end, pending=record)

    def reset(self, key: K, path: str, /) -> None:
        self.inner.reset(key, path)

    def move(self, key: K, path: str, /) -> None:
        self.inner.move(key, path)

    def forget(self, older_than: float) -> int:
        return self.inner.forget(older_than)

    def save(self) -> None:
        self.inner.save()


def upgrade(state_dir: Path, registry: ChainRegistry[Any]) -> None:
    """Move the previous version's ``chain.json`` into the registry, then remove it.

    Each registry entry without a head takes the one recorded at its acknowledged offset
    (the previous version kept every pair since the last registry write, so the offset on
    disk has its head); the gaps move too. The registry is written before the old file is
    removed: a crash in between upgrades again, the same way.
    """
    path = Path(state_dir) / LEGACY_NAME
    raw = read_state(path, "the chain state", ChainStateError)
    if raw is None:
        return
    try:
        document = orjson.loads(raw)
        files = document["files"]
        if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("heads"), list) for e in files.values()
        ):
            raise ValueError("files are malformed")
        gaps = [Gap.model_validate(item) for item in document.get("gaps", [])]
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ChainStateError(
            f"the chain state {path} (of the previous version) is unreadable ({exc}); move "
            "it aside to start new chains from the current checkpoints (verify then sees new "
            "streams begin)"
        ) from None
    adopted = 0
    for entry in registry.positions():
        legacy = files.get(entry.key)
        if entry.chain is not None or not isinstance(legacy, dict):
            continue
        for record in legacy["heads"]:
            if head_at(record, entry.acked) is not None:
                registry.adopt_chain(entry.key, record)
                adopted += 1
                break
    registry.add_gaps([gap.model_dump(mode="json") for gap in gaps])
    registry.save()
    path.unlink()
    log.info("chain_state_upgraded", path=str(path), heads=adopted, gaps=len(gaps))


class Keeper:
    """The run loop's one handle on tamper evidence: chains, ledger, signer, and the chain
    state in the registry (bound by :meth:`wrap`).

    Without a key the events are still chained (the links alone show a deletion or an edit
    in the middle of a stream), and gaps are still declared, in unsigned checkpoints; nothing
    is vouched for, so ``verify`` counts every event as unsigned. ``store`` writes one
    checkpoint to the index.
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
        self.state_dir = Path(state_dir)
        self.view: ChainView | None = None  # bound to the registry by :meth:`wrap`
        self.chains = Chains(host, self._resume, origins=self)
        self.ledger = Ledger()
        self.signer = Signer(key, host, state_dir, store, interval=interval)
        self._rotation = rotation
        if key is None:
            log.warning(
                "chain_unsigned",
                reason="no CHAIN_KEY_FILE: checkpoints are not signed (they only declare gaps)",
            )

    def wrap(self, registry: ChainRegistry[K]) -> ChainedStore[K]:
        """Keep the chains in ``registry`` (upgrading a previous version's state first)."""
        upgrade(self.state_dir, registry)
        self.view = ChainView(registry)
        return ChainedStore(registry, self.ledger)

    def _resume(self, key: str, content_id: str, offset: int) -> Head | None:
        return self.view.lookup(content_id, offset, key) if self.view is not None else None

    def origin(self, key: str) -> str | None:
        """The file ``key`` copies, as the registry remembers it (see ``Chains.copied``)."""
        return self.view.registry.origin(key) if self.view is not None else None

    def set_origin(self, key: str, origin: str) -> None:
        if self.view is not None:
            self.view.registry.set_origin(key, origin)

    def sign(self, *, force: bool = False) -> None:
        """Sign and store a checkpoint when one is due (or now, at shutdown); switch keys
        first when ``rotation`` offers a new one."""
        new_key = self._rotation() if self._rotation is not None else None
        if new_key is not None:
            self._rotate(self.signer, new_key)
        if force or self.signer.due():
            self._checkpoint(self.signer, final=force)
        if force and self.view is not None:
            try:
                self.view.registry.save()  # the gaps just declared are not declared again
            except OSError as exc:
                log.warning("chain_state_write_failed", error=str(exc))

    def _rotate(self, signer: Signer, key: ChainKey) -> None:
        """Close the old key's record, then sign every head under the new one.

        The last checkpoint under the old key covers everything acknowledged so far, so no
        event is left unsigned across the switch; the first under the new key signs all
        heads, as a restart with the new key would, so ``verify --since`` the rotation with
        the new key alone has a signed start for every stream.
        """
        old_key_id = signer.key.key_id if signer.key is not None else None
        if signer.key is not None:
            self._checkpoint(signer)
        signer.rekey(key)
        self._checkpoint(signer)
        log.info("chain_key_rotated", old_key_id=old_key_id, key_id=key.key_id)

    def _checkpoint(self, signer: Signer, *, final: bool = False) -> None:
        view = self.view
        heads = view.heads() if view is not None else []
        gaps = view.gaps() if view is not None else []
        pending = view.pending() if view is not None else []
        carried = signer.checkpoint(heads, gaps, final=final, pending=pending)
        if carried and view is not None:
            view.clear_gaps(carried)
