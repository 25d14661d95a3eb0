"""Chain state on disk: heads at acknowledged offsets, gaps until signed, crash windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chain.checkpoint import ChainKey, Checkpoint, Gap
from chain.link import GENESIS, Head
from chain.state import Ledger, Place, read_local_checkpoints
from chain.store import ChainedStore, ChainFile, ChainStateError, Keeper

STREAM = "s" * 32


def head(seq: int) -> Head:
    return Head(STREAM, seq, f"{seq:064x}", f"evt-{seq}")


@dataclass
class Position:
    acked: int


@dataclass
class FakeRegistry:
    """The registry's checkpoint-store surface, recording what reached it."""

    acked: dict[str, int] = field(default_factory=dict)
    saves: int = 0
    fail: bool = False

    def get(self, key: str, /) -> Position | None:
        return Position(self.acked[key]) if key in self.acked else None

    def ack(self, key: str, path: str, end: int, /) -> None:
        self.acked[key] = max(end, self.acked.get(key, 0))

    def mark_sent(self, key: str, path: str, end: int, /) -> None:
        return None

    def save(self) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saves += 1


class TestChainFile:
    def test_lookup_by_content_and_offset_survives_a_restart(self, tmp_path: Path) -> None:
        """A head recorded at an offset is found again, by any file of the same content."""
        chains = ChainFile(tmp_path)
        chains.record("1:2:f", "f", "/l/audit.log", 100, head(3))
        chains.save()
        again = ChainFile(tmp_path)
        assert again.lookup("f", 100) == head(3)
        assert again.lookup("f", 99) is None
        assert again.lookup("g", 100) is None

    def test_pairs_kept_until_the_registry_write_succeeds(self, tmp_path: Path) -> None:
        """Every pair since the last good registry write stays on disk: a crash between the
        two writes, or a failed registry write, still finds the registry's offset."""
        registry = FakeRegistry()
        chains = ChainFile(tmp_path)
        ledger = Ledger()
        store = ChainedStore(registry, chains, ledger, content_of=lambda _key: "f")
        for seq, end in ((1, 10), (2, 20)):
            ledger.note("k", end, Place(head(seq), GENESIS))
            store.ack("k", "/l", end)
        store.save()
        assert ChainFile(tmp_path).lookup("f", 20) == head(2)
        registry.fail = True
        ledger.note("k", 30, Place(head(3), GENESIS))
        store.ack("k", "/l", 30)
        with pytest.raises(OSError, match="disk full"):
            store.save()
        on_disk = ChainFile(tmp_path)
        assert on_disk.lookup("f", 20) == head(2)  # what the registry on disk says
        assert on_disk.lookup("f", 30) == head(3)
        registry.fail = False
        store.save()
        assert ChainFile(tmp_path).lookup("f", 30) == head(3)
        store.save()  # nothing changed: the trimmed list is written with the next change
        assert [h for h, _path in chains.heads()] == [head(3)]

    def test_gaps_persist_until_cleared(self, tmp_path: Path) -> None:
        """Gaps come back after a restart, once per (stream, seq), until cleared."""
        gap = Gap(stream=STREAM, seq=2, prev="a" * 64, hash="b" * 64, reason="400")
        chains = ChainFile(tmp_path)
        chains.add_gaps([gap, gap])
        chains.save()
        again = ChainFile(tmp_path)
        assert again.gaps() == [gap]
        again.clear_gaps([gap])
        again.save()
        assert ChainFile(tmp_path).gaps() == []

    def test_unreadable_file_is_one_clear_error(self, tmp_path: Path) -> None:
        """A damaged chain.json stops the agent with its name and the way out."""
        (tmp_path / "chain.json").write_text('{"version": 9}')
        with pytest.raises(ChainStateError, match=r"chain\.json is unreadable .* move it aside"):
            ChainFile(tmp_path)

    def test_files_still_for_a_week_are_forgotten(self, tmp_path: Path) -> None:
        """Chain state of files long gone does not grow the file forever."""
        now = [1_000_000.0]
        chains = ChainFile(tmp_path, clock=lambda: now[0])
        chains.record("k", "f", "/l", 10, head(1))
        now[0] += 8 * 86_400
        chains.save()
        assert ChainFile(tmp_path).lookup("f", 10) is None


class TestChainedStore:
    def test_ack_records_head_and_gaps_then_forwards(self, tmp_path: Path) -> None:
        """An acknowledgement records the head at the offset and the gaps it settles."""
        registry, chains, ledger = FakeRegistry(), ChainFile(tmp_path), Ledger()
        store = ChainedStore(registry, chains, ledger, content_of=lambda _key: "f")
        ledger.note("k", 10, Place(head(1), GENESIS))
        ledger.refused("k", 10, "mapper_parsing_exception")
        store.ack("k", "/l", 10)
        assert registry.acked == {"k": 10}
        assert store.get("k") == Position(10)
        assert chains.lookup("f", 10) == head(1)
        assert [(g.seq, g.event_id) for g in chains.gaps()] == [(1, "evt-1")]


class TestKeeper:
    def test_signs_heads_and_clears_gaps_once_stored(self, tmp_path: Path) -> None:
        """At shutdown the acknowledged heads and gaps are signed, stored, and gaps cleared."""
        stored: list[Checkpoint] = []
        keeper = Keeper("pod-a", tmp_path, ChainKey(b"k" * 32), stored.append)
        store = keeper.wrap(FakeRegistry(), lambda _key: "f")
        keeper.ledger.note("k", 10, Place(head(1), GENESIS))
        keeper.ledger.refused("k", 10, "400")
        keeper.ledger.note("k", 20, Place(head(2), head(1).hash))
        store.ack("k", "/l", 20)
        keeper.sign(force=True)
        (checkpoint,) = stored
        assert [(h.seq, h.path) for h in checkpoint.heads] == [(2, "/l")]
        assert [g.seq for g in checkpoint.gaps] == [1]
        assert ChainFile(tmp_path).gaps() == []
        assert list(read_local_checkpoints(tmp_path / "chain-checkpoints.ndjson")) == stored

    def test_without_key_nothing_is_signed(self, tmp_path: Path) -> None:
        """No key: no checkpoint, no local copy, no gap kept."""
        stored: list[Checkpoint] = []
        keeper = Keeper("pod-a", tmp_path, None, stored.append)
        keeper.ledger.note("k", 10, Place(head(1), GENESIS))
        keeper.ledger.refused("k", 10, "400")
        keeper.sign(force=True)
        assert stored == []
        assert not (tmp_path / "chain-checkpoints.ndjson").exists()
        assert keeper.ledger.settle("k", 10) == (head(1), [])
