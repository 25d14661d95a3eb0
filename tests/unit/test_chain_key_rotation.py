"""The chain key followed while the agent runs: rotation without a restart."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from agent.evidence.chains import Place
from agent.evidence.keeper import ChainedStore, Keeper
from agent.evidence.keyfile import KeyFileWatch
from agent.files.identity import FileKey
from agent.files.registry import Registry
from chain.checkpoint import ChainKey, Checkpoint
from chain.link import GENESIS, Head
from tests.unit.test_chain_store import KEY

STREAM = "s" * 32
OLD = b"o" * 32
NEW = b"n" * 32


def head(seq: int) -> Head:
    return Head(STREAM, seq, f"{seq:064x}", f"evt-{seq}")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watch(path: Path, clock: Clock) -> KeyFileWatch:
    path.write_bytes(OLD)
    key, keys = KeyFileWatch.open(path, interval=5.0, clock=clock)
    assert key.key_id == ChainKey(OLD).key_id
    return keys


class TestKeyFileWatch:
    def test_a_new_key_is_offered_once(self, tmp_path: Path) -> None:
        clock = Clock()
        keys = watch(tmp_path / "chain.key", clock)
        (tmp_path / "chain.key").write_bytes(NEW + b"\n")
        clock.now = 5.0
        offered = keys.changed()
        assert offered is not None
        assert offered.key_id == ChainKey(NEW).key_id
        clock.now = 10.0
        assert keys.changed() is None

    def test_the_file_is_not_read_again_before_the_interval(self, tmp_path: Path) -> None:
        clock = Clock()
        keys = watch(tmp_path / "chain.key", clock)
        (tmp_path / "chain.key").write_bytes(NEW)
        clock.now = 4.9
        assert keys.changed() is None
        clock.now = 5.0
        assert keys.changed() is not None

    def test_the_same_key_rewritten_is_no_change(self, tmp_path: Path) -> None:
        clock = Clock()
        keys = watch(tmp_path / "chain.key", clock)
        (tmp_path / "chain.key").write_bytes(b"\n  " + OLD + b"  \n")
        clock.now = 60.0
        assert keys.changed() is None

    def test_a_secret_swapped_by_symlink_is_followed(self, tmp_path: Path) -> None:
        """Kubernetes' Secret update: ..data points to a new directory, renamed into place."""
        clock = Clock()
        for name, secret in (("v1", OLD), ("v2", NEW)):
            (tmp_path / name).mkdir()
            (tmp_path / name / "chain.key").write_bytes(secret)
        (tmp_path / "..data").symlink_to("v1")
        (tmp_path / "chain.key").symlink_to("..data/chain.key")
        _key, keys = KeyFileWatch.open(tmp_path / "chain.key", interval=1.0, clock=clock)
        (tmp_path / "..data_tmp").symlink_to("v2")
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        clock.now = 1.0
        offered = keys.changed()
        assert offered is not None
        assert offered.key_id == ChainKey(NEW).key_id

    def test_an_unusable_file_is_one_error_and_the_old_key_stays(self, tmp_path: Path) -> None:
        clock = Clock()
        path = tmp_path / "chain.key"
        keys = watch(path, clock)
        with capture_logs() as logs:
            path.write_bytes(b"short")
            for second in (5.0, 10.0, 15.0):
                clock.now = second
                assert keys.changed() is None
            path.unlink()
            clock.now = 20.0
            assert keys.changed() is None
            path.write_bytes(NEW)
            clock.now = 25.0
            offered = keys.changed()
        assert offered is not None
        assert offered.key_id == ChainKey(NEW).key_id
        errors = [entry for entry in logs if entry["event"] == "chain_key_unusable"]
        assert [entry["log_level"] for entry in errors] == ["error", "error"]
        assert "5 bytes; at least 32 needed" in errors[0]["error"]
        assert "cannot read the chain key file" in errors[1]["error"]
        assert all(entry["key_id"] == ChainKey(OLD).key_id for entry in errors)
        assert not any(b"short" in repr(entry).encode() for entry in logs)


def rotating_keeper(
    state_dir: Path, stored: list[Checkpoint], offers: list[ChainKey]
) -> tuple[Keeper, ChainedStore[FileKey]]:
    """A keeper under OLD that is offered each key in ``offers`` (one per sign), checkpoints
    due only when forced."""
    keeper = Keeper(
        "pod-a", state_dir, ChainKey(OLD), stored.append, interval=3600.0,
        rotation=lambda: offers.pop() if offers else None,
    )  # fmt: skip
    return keeper, keeper.wrap(Registry(state_dir))


class TestKeeperRotation:
    def test_old_key_signs_up_to_the_switch_and_new_key_signs_every_head(
        self, tmp_path: Path
    ) -> None:
        stored: list[Checkpoint] = []
        offers: list[ChainKey] = []
        keeper, store = rotating_keeper(tmp_path, stored, offers)
        keeper.ledger.note(str(KEY), 10, Place(head(1), GENESIS))
        keeper.ledger.note(str(KEY), 20, Place(head(2), head(1).hash))
        store.ack(KEY, "/l", 20)
        keeper.sign()
        assert stored == []  # not due, no new key: nothing signed
        offers.append(ChainKey(NEW))
        with capture_logs() as logs:
            keeper.sign()
        old, new = stored
        assert old.key_id == ChainKey(OLD).key_id
        assert old.valid_under(ChainKey(OLD))
        assert new.key_id == ChainKey(NEW).key_id
        assert new.valid_under(ChainKey(NEW))
        assert [(h.seq, h.hash) for h in old.heads] == [(2, head(2).hash)]
        assert [(h.seq, h.hash) for h in new.heads] == [(2, head(2).hash)]
        (rotated,) = [entry for entry in logs if entry["event"] == "chain_key_rotated"]
        assert rotated["old_key_id"] == ChainKey(OLD).key_id
        assert rotated["key_id"] == ChainKey(NEW).key_id
        # After the switch, what comes next is signed with the new key only.
        keeper.ledger.note(str(KEY), 30, Place(head(3), head(2).hash))
        store.ack(KEY, "/l", 30)
        keeper.sign(force=True)
        assert len(stored) == 3
        assert stored[2].key_id == ChainKey(NEW).key_id
        assert [h.seq for h in stored[2].heads] == [3]

    def test_a_gap_is_carried_by_the_old_keys_last_checkpoint(self, tmp_path: Path) -> None:
        stored: list[Checkpoint] = []
        keeper, store = rotating_keeper(tmp_path, stored, [ChainKey(NEW)])
        keeper.ledger.note(str(KEY), 10, Place(head(1), GENESIS))
        keeper.ledger.refused(str(KEY), 10, "400")
        store.ack(KEY, "/l", 10)
        keeper.sign()
        old, new = stored
        assert [g.seq for g in old.gaps] == [1]
        assert new.gaps == []
