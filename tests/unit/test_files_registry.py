"""The registry: forward-only checkpoints, atomic saves, loud failures on corruption."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import orjson
import pytest

from agent.files.identity import FileKey, fingerprint, key_at
from agent.files.registry import KEPT_RUNS, REGISTRY_NAME, Registry, RegistryError

KEY = FileKey(1, 100, fingerprint(b"first\n"))
OTHER = FileKey(1, 200, fingerprint(b"other\n"))


def _document(registry_dir: Path) -> dict[str, object]:
    loaded = orjson.loads((registry_dir / REGISTRY_NAME).read_bytes())
    assert isinstance(loaded, dict)
    return loaded


def _saved(state: Path) -> Registry:
    registry = Registry(state)
    registry.mark_sent(KEY, "/logs/audit.log", 300)
    registry.ack(KEY, "/logs/audit.log", 200)
    registry.save()
    return registry


class TestPositions:
    def test_new_registry_is_empty(self, tmp_path: Path) -> None:
        """A state directory without a registry (first start) gives no positions."""
        registry = Registry(tmp_path / "state")
        assert registry.positions() == []
        assert registry.get(KEY) is None

    def test_ack_moves_forward_only(self, tmp_path: Path) -> None:
        """An older acknowledgement never moves the checkpoint back."""
        registry = Registry(tmp_path)
        registry.ack(KEY, "/a", 50)
        registry.ack(KEY, "/a", 20)
        position = registry.get(KEY)
        assert position is not None
        assert (position.acked, position.sent) == (50, 50)

    def test_pending_head_kept_while_the_window_is_open(self, tmp_path: Path) -> None:
        """The chain head at ``sent`` is saved with it, and dropped once acked reaches it."""
        registry = Registry(tmp_path)
        registry.ack(KEY, "/a", 40)
        registry.mark_sent(KEY, "/a", 100, pending={"seq": 9, "at": 100})
        registry.save()
        assert Registry(tmp_path).pending_records() == [{"seq": 9, "at": 100}]
        registry.ack(KEY, "/a", 100)
        assert registry.pending_records() == []
        registry.save()
        assert "pending" not in _document(tmp_path)["files"][0]  # type: ignore[index]

    def test_sent_never_below_acked(self, tmp_path: Path) -> None:
        """sent is a high-water mark that acked drags along, and it never moves back."""
        registry = Registry(tmp_path)
        registry.mark_sent(KEY, "/a", 100)
        registry.ack(KEY, "/a", 40)
        registry.mark_sent(KEY, "/a", 60)
        position = registry.get(KEY)
        assert position is not None
        assert (position.acked, position.sent) == (40, 100)
        registry.ack(KEY, "/a", 150)
        position = registry.get(KEY)
        assert position is not None
        assert (position.acked, position.sent) == (150, 150)

    def test_path_follows_latest_name(self, tmp_path: Path) -> None:
        """Acks and move() record the file's current name."""
        registry = Registry(tmp_path)
        registry.ack(KEY, "/logs/audit.log", 10)
        registry.move(KEY, "/logs/audit.log.1")
        position = registry.get(KEY)
        assert position is not None
        assert position.path == "/logs/audit.log.1"

    def test_get_returns_copy(self, tmp_path: Path) -> None:
        """Changing a returned position does not change the registry."""
        registry = Registry(tmp_path)
        registry.ack(KEY, "/a", 10)
        position = registry.get(KEY)
        assert position is not None
        position.acked = 999
        again = registry.get(KEY)
        assert again is not None
        assert again.acked == 10

    def test_reset_goes_back_to_zero(self, tmp_path: Path) -> None:
        """reset() is the one way back: a file truncated with an unchanged first line."""
        registry = Registry(tmp_path)
        registry.ack(KEY, "/a", 10)
        registry.reset(KEY, "/a")
        position = registry.get(KEY)
        assert position is not None
        assert (position.acked, position.sent) == (0, 0)

    def test_find_fingerprint_prefers_furthest(self, tmp_path: Path) -> None:
        """Of several entries with one fingerprint, the furthest acknowledged is returned."""
        registry = Registry(tmp_path)
        copy = FileKey(1, 300, KEY.fingerprint)
        registry.ack(KEY, "/a", 10)
        registry.ack(copy, "/a.1", 70)
        registry.ack(OTHER, "/b", 500)
        found = registry.find_fingerprint(KEY.fingerprint)
        assert found is not None
        assert (found.key, found.acked) == (str(copy), 70)
        assert registry.find_fingerprint(fingerprint(b"unknown\n")) is None

    def test_concurrent_acks(self, tmp_path: Path) -> None:
        """Acks from several threads end at the highest offset any of them reported."""
        registry = Registry(tmp_path)

        def ack_many(start: int) -> None:
            for end in range(start, 5000, 4):
                registry.ack(KEY, "/a", end)

        threads = [threading.Thread(target=ack_many, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        position = registry.get(KEY)
        assert position is not None
        assert position.acked == 4999


class TestPersistence:
    def test_round_trip(self, tmp_path: Path) -> None:
        """What is saved is what the next start loads."""
        _saved(tmp_path)
        position = Registry(tmp_path).get(KEY)
        assert position is not None
        assert (position.path, position.acked, position.sent) == ("/logs/audit.log", 200, 300)

    def test_copy_origins_round_trip(self, tmp_path: Path) -> None:
        """Which file copies which is kept across a restart, and refused when malformed."""
        registry = _saved(tmp_path)
        registry.set_origin(str(OTHER), str(KEY))
        registry.save()
        assert Registry(tmp_path).origin(str(OTHER)) == str(KEY)
        assert Registry(tmp_path).origin(str(KEY)) is None
        document = _document(tmp_path)
        document["origins"] = {str(OTHER): 7}
        (tmp_path / REGISTRY_NAME).write_bytes(orjson.dumps(document))
        with pytest.raises(RegistryError, match='"origins" is not an object of keys'):
            Registry(tmp_path)

    def test_versioned_format(self, tmp_path: Path) -> None:
        """The file is {"version": 1, "files": [...]}, one object per file identity."""
        _saved(tmp_path)
        document = _document(tmp_path)
        assert document["version"] == 1
        assert document["files"] == [
            {
                "key": str(KEY),
                "path": "/logs/audit.log",
                "acked": 200,
                "sent": 300,
                "updated": pytest.approx(time.time(), abs=60),
            }
        ]

    def test_save_leaves_no_temp_file(self, tmp_path: Path) -> None:
        """After a save only registry.json is in the state directory."""
        _saved(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [REGISTRY_NAME]

    def test_save_without_changes_does_not_write(self, tmp_path: Path) -> None:
        """A save with nothing new leaves the file alone (no needless fsyncs)."""
        registry = _saved(tmp_path)
        path = tmp_path / REGISTRY_NAME
        os.utime(path, (0, 0))
        registry.save()
        assert path.stat().st_mtime == 0
        registry.ack(KEY, "/logs/audit.log", 250)
        registry.save()
        assert path.stat().st_mtime > 0

    def test_failed_rename_keeps_previous_state(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A save that dies before the rename leaves the previous registry and no temp file."""
        registry = _saved(tmp_path)
        registry.ack(KEY, "/logs/audit.log", 300)

        def crash(self: Path, target: Path) -> Path:
            raise OSError("disk on fire")

        monkeypatch.setattr(Path, "replace", crash)
        with pytest.raises(OSError, match="disk on fire"):
            registry.save()
        monkeypatch.undo()
        assert [p.name for p in tmp_path.iterdir()] == [REGISTRY_NAME]
        position = Registry(tmp_path).get(KEY)
        assert position is not None
        assert position.acked == 200
        registry.save()  # still dirty: the next save writes the new state
        position = Registry(tmp_path).get(KEY)
        assert position is not None
        assert position.acked == 300

    def test_stray_temp_file_ignored_and_removed(self, tmp_path: Path) -> None:
        """A temp file left by a crash mid-write is removed; the real registry is loaded."""
        _saved(tmp_path)
        stray = tmp_path / f"{REGISTRY_NAME}.abc123.tmp"
        stray.write_bytes(b'{"version": 1, "fil')
        position = Registry(tmp_path).get(KEY)
        assert position is not None
        assert position.acked == 200
        assert not stray.exists()

    @pytest.mark.parametrize(
        "content",
        [
            b'{"version": 1, "files": [{"key": "1:100:',  # truncated mid-write
            b"",
            b"\x00\x00\x00\x00",
            b"[]",
            b'{"version": 2, "files": []}',
            b'{"version": 1}',
            b'{"version": 1, "files": [{"key": "nonsense", "path": "/a", "acked": 1,'
            b' "sent": 1, "updated": 0}]}',
            b'{"version": 1, "files": [{"key": "1:2:' + b"0" * 32 + b'", "path": "/a",'
            b' "acked": 5, "sent": 1, "updated": 0}]}',
            b'{"version": 1, "files": [{"key": "1:2:' + b"0" * 32 + b'", "path": "/a"}]}',
        ],
        ids=[
            "truncated",
            "empty",
            "zeros",
            "not-object",
            "newer-version",
            "no-files",
            "bad-key",
            "sent-below-acked",
            "missing-fields",
        ],
    )
    def test_corrupt_registry_is_an_error(self, tmp_path: Path, content: bytes) -> None:
        """A registry that cannot be understood raises RegistryError naming the file."""
        (tmp_path / REGISTRY_NAME).write_bytes(content)
        with pytest.raises(RegistryError, match=str(tmp_path / REGISTRY_NAME)):
            Registry(tmp_path)
        assert (tmp_path / REGISTRY_NAME).read_bytes() == content  # never overwritten


class TestRuns:
    def test_each_run_learns_the_runs_before_it(self, tmp_path: Path) -> None:
        """A run's requests can outlive it on the node: the next runs get its id (newest
        first, a few kept, so a run killed before it waited leaves the wait to the next)."""
        first = Registry(tmp_path)
        assert first.begin_run("a") == []
        first.save()
        ids = ["a"]
        for run in "bcdef":
            registry = Registry(tmp_path)
            assert registry.begin_run(run) == list(reversed(ids))[:KEPT_RUNS]
            registry.save()
            ids.append(run)
        assert orjson.loads((tmp_path / REGISTRY_NAME).read_bytes())["runs"] == ["f", "e", "d", "c"]

    def test_runs_are_written_with_the_first_save(self, tmp_path: Path) -> None:
        registry = Registry(tmp_path)
        registry.begin_run("a")
        registry.save()
        assert Registry(tmp_path).begin_run("b") == ["a"]

    def test_a_registry_without_runs_is_read(self, tmp_path: Path) -> None:
        """Written by an earlier version: no run to wait for."""
        (tmp_path / REGISTRY_NAME).write_bytes(b'{"version": 1, "files": []}')
        assert Registry(tmp_path).begin_run("a") == []

    def test_runs_that_are_not_ids_are_an_error(self, tmp_path: Path) -> None:
        (tmp_path / REGISTRY_NAME).write_bytes(b'{"version": 1, "files": [], "runs": [3]}')
        with pytest.raises(RegistryError, match="runs"):
            Registry(tmp_path)

    def test_the_time_an_open_replay_window_was_last_extended(self, tmp_path: Path) -> None:
        """What the first replay check after a crash waits from (``indexer.inflight``): the
        newest change of a file whose sent lines are not all acknowledged."""
        registry = Registry(tmp_path)
        assert registry.window_extended() is None
        registry.mark_sent(KEY, "/a.log", 100)
        registry.ack(KEY, "/a.log", 100)
        assert registry.window_extended() is None  # every sent line acknowledged
        before = time.time()
        registry.mark_sent(OTHER, "/b.log", 50)
        registry.save()
        extended = Registry(tmp_path).window_extended()
        assert extended is not None
        assert before <= extended <= time.time()


class TestForget:
    def test_drops_gone_and_old(self, tmp_path: Path) -> None:
        """An entry whose file is gone and untouched for long enough is dropped."""
        registry = Registry(tmp_path)
        registry.ack(KEY, str(tmp_path / "deleted.log"), 10)
        assert registry.forget(older_than=3600) == 0  # gone, but touched recently
        assert registry.forget(older_than=-1) == 1
        assert registry.positions() == []

    def test_keeps_files_on_disk(self, tmp_path: Path) -> None:
        """An entry whose file is still on disk (same inode and first line) is kept."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"first\n")
        key = key_at(str(path), 1024)
        assert key is not None
        registry = Registry(tmp_path)
        registry.ack(key, str(path), 6)
        assert registry.forget(older_than=-1) == 0
        assert registry.get(key) is not None

    def test_drops_old_generation_of_truncated_file(self, tmp_path: Path) -> None:
        """Same path and inode but another first line means the recorded file is gone."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"first\n")
        key = key_at(str(path), 1024)
        assert key is not None
        registry = Registry(tmp_path)
        registry.ack(key, str(path), 6)
        with path.open("r+b") as handle:
            handle.truncate(0)
            handle.write(b"second generation\n")
        assert registry.forget(older_than=-1) == 1
