"""File identity: device, inode and the fingerprint of the first line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.files.identity import FileKey, fingerprint, is_fingerprint, key_at, prefix_of, read_key


def _key(path: Path, cap: int = 1024) -> FileKey | None:
    return key_at(str(path), cap)


class TestHeadOf:
    def test_first_line_with_newline(self) -> None:
        """The fingerprinted prefix is the first line including its newline."""
        head = prefix_of(b"first\nsecond\n", 1024)
        assert head is not None
        assert head.length == 6
        assert head.fingerprint == fingerprint(b"first\n")

    def test_incomplete_first_line(self) -> None:
        """A first line without its newline, shorter than the cap, gives no identity yet."""
        assert prefix_of(b"still being writ", 1024) is None

    def test_long_first_line_capped(self) -> None:
        """A first line longer than the cap is fingerprinted by its first cap bytes."""
        data = b"x" * 100 + b"\n"
        head = prefix_of(data, 16)
        assert head is not None
        assert head.length == 16
        assert head.fingerprint == fingerprint(b"x" * 16)
        assert prefix_of(b"x" * 16, 16) == head

    def test_empty(self) -> None:
        """An empty file has no identity."""
        assert prefix_of(b"", 1024) is None

    @given(first=st.binary(max_size=200).filter(lambda b: b"\n" not in b), rest=st.binary())
    def test_stable_under_appends(self, first: bytes, rest: bytes) -> None:
        """Whatever is appended after the first line never changes the fingerprint."""
        line = first + b"\n"
        assert prefix_of(line, 64) == prefix_of(line + rest, 64)


class TestFileKey:
    def test_str_is_registry_key(self) -> None:
        """str() is "device:inode:fingerprint" and parse() reverses it."""
        key = FileKey(64769, 1234, "ab" * 16)
        assert str(key) == f"64769:1234:{'ab' * 16}"
        assert FileKey.parse(str(key)) == key

    def test_content_id_is_fingerprint(self) -> None:
        """content_id is the fingerprint alone, so it ignores device and inode."""
        assert FileKey(1, 2, "cd" * 16).content_id == FileKey(3, 4, "cd" * 16).content_id

    @pytest.mark.parametrize(
        "text", ["", "1:2", "1:2:3:4", "a:2:" + "0" * 32, "1:2:xyz", "-1:2:" + "0" * 32]
    )
    def test_parse_rejects_garbage(self, text: str) -> None:
        """Anything but a well-formed key is a ValueError, never a half-parsed key."""
        with pytest.raises(ValueError, match=r".+"):
            FileKey.parse(text)

    def test_fingerprint_shape(self) -> None:
        """Fingerprints are 32 lowercase hex characters."""
        assert is_fingerprint(fingerprint(b"line\n"))
        assert not is_fingerprint("ABCD" * 8)


class TestReadKey:
    def test_key_of_open_file(self, tmp_path: Path) -> None:
        """The key carries the file's device and inode and its first line's digest."""
        path = tmp_path / "audit.log"
        path.write_bytes(b'{"id":1}\n{"id":2}\n')
        fd = os.open(path, os.O_RDONLY)
        try:
            key = read_key(fd, 1024)
        finally:
            os.close(fd)
        st_ = path.stat()
        assert key == FileKey(st_.st_dev, st_.st_ino, fingerprint(b'{"id":1}\n'))

    def test_small_file_has_identity(self, tmp_path: Path) -> None:
        """A file much shorter than the fingerprint window still has an identity."""
        path = tmp_path / "audit.log"
        path.write_bytes(b"{}\n")
        assert _key(path, 1 << 20) is not None

    def test_copy_shares_content_id(self, tmp_path: Path) -> None:
        """A copy has another inode but the same content id; a rename keeps the whole key."""
        original = tmp_path / "audit.log"
        original.write_bytes(b"one\ntwo\n")
        copy = tmp_path / "audit.log.copy"
        shutil.copyfile(original, copy)
        key, copied = _key(original), _key(copy)
        assert key is not None
        assert copied is not None
        assert copied != key
        assert copied.content_id == key.content_id
        original.rename(tmp_path / "audit.log.1")
        assert _key(tmp_path / "audit.log.1") == key

    def test_missing_file(self, tmp_path: Path) -> None:
        """A path that does not exist has no key."""
        assert _key(tmp_path / "nope.log") is None
