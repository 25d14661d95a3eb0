"""Chain state on disk: heads kept in the registry with their offsets, gaps until signed,
one retention rule, and the previous version's chain.json upgraded in place."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from agent.evidence.chains import Place, chain_record, read_local_checkpoints
from agent.evidence.keeper import ChainStateError, Keeper
from agent.files.identity import FINGERPRINT_HEX_CHARS, FileKey
from agent.files.registry import Registry
from chain.checkpoint import ChainKey, Checkpoint, Gap
from chain.link import GENESIS, Head

STREAM = "s" * 32
CONTENT = "f" * FINGERPRINT_HEX_CHARS
KEY = FileKey(1, 2, CONTENT)


def head(seq: int) -> Head:
    return Head(STREAM, seq, f"{seq:064x}", f"evt-{seq}")


def keeper(state: Path, key: ChainKey | None = None) -> tuple[Keeper, list[Checkpoint]]:
    stored: list[Checkpoint] = []
    return Keeper("pod-a", state, key, stored.append), stored


class TestHeadsInTheRegistry:
    def test_head_written_with_its_offset_and_found_after_a_restart(self, tmp_path: Path) -> None:
        """The head at the acknowledged offset is in the same registry entry (one atomic
        write), and a restarted agent resumes the chain from it, by key or by content."""
        keep, _ = keeper(tmp_path)
        store = keep.wrap(Registry(tmp_path))
        for seq, end in ((1, 10), (2, 20)):
            keep.ledger.note(str(KEY), end, Place(head(seq), GENESIS))
            store.ack(KEY, "/l/audit.log", end)
        store.save()
        on_disk = orjson.loads((tmp_path / "registry.json").read_bytes())
        (entry,) = on_disk["files"]
        assert (entry["acked"], entry["chain"]) == (20, chain_record(head(2), 20))
        again, _ = keeper(tmp_path)
        again.wrap(Registry(tmp_path))
        assert again.view is not None
        assert again.view.lookup(CONTENT, 20, str(KEY)) == head(2)
        assert again.view.lookup(CONTENT, 20) == head(2)  # a copy finds it by content
        assert again.view.lookup(CONTENT, 10, str(KEY)) is None  # only the offset on disk
        assert again.view.heads() == [(head(2), "/l/audit.log")]
        assert not (tmp_path / "chain.json").exists()

    def test_the_head_at_the_end_of_the_window_is_kept_until_acknowledged(
        self, tmp_path: Path
    ) -> None:
        """Before a request the window's end is recorded with its chain head, so a run that
        is killed with lines in flight leaves their head on disk; the next checkpoint signs
        it as pending. Acknowledged past it, it is gone."""
        keep, stored = keeper(tmp_path, ChainKey(b"k" * 32))
        store = keep.wrap(Registry(tmp_path))
        for seq, end in ((1, 10), (2, 20), (3, 30)):
            keep.ledger.note(str(KEY), end, Place(head(seq), GENESIS))
        store.ack(KEY, "/l/audit.log", 10)
        store.mark_sent(KEY, "/l/audit.log", 30)
        store.save()
        again, stored = keeper(tmp_path, ChainKey(b"k" * 32))  # killed; the next run
        again_store = again.wrap(Registry(tmp_path))
        assert again.view is not None
        assert again.view.pending() == [head(3)]
        again.sign(force=True)
        (signed_head,) = stored[-1].heads
        assert (signed_head.seq, signed_head.pending_seq) == (1, 3)
        assert signed_head.pending_hash == head(3).hash
        again.ledger.note(str(KEY), 30, Place(head(3), head(2).hash))
        again_store.ack(KEY, "/l/audit.log", 30)
        assert again.view.pending() == []

    def test_a_reset_drops_the_head(self, tmp_path: Path) -> None:
        """A file truncated in place starts over: its old head no longer applies."""
        keep, _ = keeper(tmp_path)
        registry = Registry(tmp_path)
        store = keep.wrap(registry)
        keep.ledger.note(str(KEY), 10, Place(head(1), GENESIS))
        store.ack(KEY, "/l", 10)
        store.reset(KEY, "/l")
        assert registry.chain_records() == []

    def test_one_retention_rule(self, tmp_path: Path) -> None:
        """A file gone from disk is forgotten with its head, by the registry's rule; a quiet
        file still on disk keeps both, however long it is idle."""
        keep, _ = keeper(tmp_path)
        registry = Registry(tmp_path)
        store = keep.wrap(registry)
        keep.ledger.note(str(KEY), 10, Place(head(1), GENESIS))
        store.ack(KEY, str(tmp_path / "gone.log"), 10)
        time.sleep(0.01)
        assert store.forget(older_than=0) == 1
        assert registry.chain_records() == []

    def test_gaps_kept_until_a_stored_checkpoint_carries_them(self, tmp_path: Path) -> None:
        """A refused event is a gap in the registry from its acknowledgement until the
        checkpoint carrying it is stored; then it is cleared (and written) once."""
        keep, stored = keeper(tmp_path, ChainKey(b"k" * 32))
        registry = Registry(tmp_path)
        store = keep.wrap(registry)
        keep.ledger.note(str(KEY), 10, Place(head(1), GENESIS))
        keep.ledger.refused(str(KEY), 10, "400")
        keep.ledger.note(str(KEY), 20, Place(head(2), head(1).hash))
        store.ack(KEY, "/l", 20)
        store.save()
        assert [g["seq"] for g in Registry(tmp_path).gaps()] == [1]
        keep.sign(force=True)
        (checkpoint,) = stored
        assert [(h.seq, h.path) for h in checkpoint.heads] == [(2, "/l")]
        assert [g.seq for g in checkpoint.gaps] == [1]
        assert checkpoint.final
        assert Registry(tmp_path).gaps() == []
        assert list(read_local_checkpoints(tmp_path / "chain-checkpoints.ndjson")) == stored

    def test_without_key_only_gaps_are_declared(self, tmp_path: Path) -> None:
        """No key: nothing is signed, but a refused event is still declared as a gap, in an
        unsigned checkpoint with no heads, so verify knows the position is empty."""
        keep, stored = keeper(tmp_path)
        store = keep.wrap(Registry(tmp_path))
        keep.sign(force=True)
        assert stored == []
        assert not (tmp_path / "chain-checkpoints.ndjson").exists()
        keep.ledger.note(str(KEY), 10, Place(head(1), GENESIS))
        keep.ledger.refused(str(KEY), 10, "400")
        store.ack(KEY, "/l", 10)
        keep.sign(force=True)
        (checkpoint,) = stored
        assert (checkpoint.key_id, checkpoint.signature, checkpoint.heads) == ("", "", [])
        assert [(g.seq, g.reason) for g in checkpoint.gaps] == [(1, "400")]


class TestUpgradeFromChainJson:
    def legacy(self, state: Path, acked: int) -> Gap:
        """The previous version's state: a registry without heads and a chain.json holding
        every (offset, head) pair since the last registry write, and a gap."""
        registry = Registry(state)
        registry.mark_sent(KEY, "/l", acked)
        registry.ack(KEY, "/l", acked)
        registry.save()
        gap = Gap(stream=STREAM, seq=1, prev=GENESIS, hash=head(1).hash, reason="400")
        document = {
            "version": 1,
            "files": {
                str(KEY): {
                    "content": CONTENT,
                    "heads": [chain_record(head(2), 20), chain_record(head(3), 30)],
                    "path": "/l",
                    "updated": 0.0,
                }
            },
            "gaps": [gap.model_dump(mode="json")],
        }
        (state / "chain.json").write_bytes(orjson.dumps(document))
        return gap

    def test_heads_and_gaps_move_into_the_registry(self, tmp_path: Path) -> None:
        """At start the head at the registry's offset and the gaps move into the registry,
        which is written; chain.json is removed; the chain resumes where it was."""
        gap = self.legacy(tmp_path, 20)
        keep, _ = keeper(tmp_path)
        keep.wrap(Registry(tmp_path))
        assert not (tmp_path / "chain.json").exists()
        on_disk = Registry(tmp_path)
        assert [r[3] for r in on_disk.chain_records()] == [chain_record(head(2), 20)]
        assert on_disk.gaps() == [gap.model_dump(mode="json")]
        assert keep.chains.advance(str(KEY), CONTENT, 20, 30, None).head == head(2)

    def test_upgrading_twice_changes_nothing(self, tmp_path: Path) -> None:
        """A crash after the registry write and before chain.json is removed: the next
        start upgrades again, to the same state."""
        self.legacy(tmp_path, 30)
        legacy = (tmp_path / "chain.json").read_bytes()
        keeper(tmp_path)[0].wrap(Registry(tmp_path))
        (tmp_path / "chain.json").write_bytes(legacy)
        keeper(tmp_path)[0].wrap(Registry(tmp_path))
        on_disk = Registry(tmp_path)
        assert [r[3] for r in on_disk.chain_records()] == [chain_record(head(3), 30)]
        assert len(on_disk.gaps()) == 1

    def test_unreadable_legacy_file_is_one_clear_error(self, tmp_path: Path) -> None:
        """A damaged chain.json stops the agent with its name and the way out."""
        (tmp_path / "chain.json").write_text('{"version": 1}')
        with pytest.raises(ChainStateError, match=r"chain\.json .* is unreadable .* move it"):
            keeper(tmp_path)[0].wrap(Registry(tmp_path))
