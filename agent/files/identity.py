"""File identity: device + inode + a fingerprint of the first line.

Device and inode alone are not enough: a filesystem hands a freed inode to the next new
file, so an old checkpoint would point into unrelated content. The fingerprint (a digest of
the first line, newline included, capped at ``fingerprint_bytes``) tells such files apart,
and, being a function of content only, it also recognises the same content under another
inode: a ``copytruncate`` copy, a restored backup, a device renumbered after a reboot.

The first line is used rather than a fixed window of bytes so that a small file (a service
that wrote one audit event) has an identity at once instead of waiting for more data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

FINGERPRINT_HEX_CHARS = 32
_DIGEST_SIZE = FINGERPRINT_HEX_CHARS // 2


@dataclass(frozen=True, slots=True)
class FileKey:
    """Who a file is, independent of its name; ``str(key)`` is its registry key."""

    device: int
    inode: int
    fingerprint: str
    # Made once: every line read asks for it (its chain and its checkpoint are keyed by it).
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", f"{self.device}:{self.inode}:{self.fingerprint}")

    def __str__(self) -> str:
        return self._text

    @property
    def content_id(self) -> str:
        """The fingerprint alone: equal for a file, its renamed self and its copies."""
        return self.fingerprint

    @classmethod
    def parse(cls, text: str) -> FileKey:
        """Inverse of ``str()``; ``ValueError`` when ``text`` is not a key."""
        device, inode, fingerprint = text.split(":")
        if not is_fingerprint(fingerprint):
            raise ValueError(f"{fingerprint!r} is not a fingerprint")
        dev, ino = int(device), int(inode)
        if dev < 0 or ino < 0:
            raise ValueError("device and inode must not be negative")
        return cls(dev, ino, fingerprint)


@dataclass(frozen=True, slots=True)
class Prefix:
    """The fingerprinted prefix of a file: its digest and its length in bytes."""

    fingerprint: str
    length: int


def is_fingerprint(text: str) -> bool:
    return len(text) == FINGERPRINT_HEX_CHARS and all(c in "0123456789abcdef" for c in text)


def fingerprint(data: bytes) -> str:
    """Digest of a first line; blake2b is fast and 128 bits make collisions irrelevant."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


def prefix_of(data: bytes, cap: int) -> Prefix | None:
    """The identity-bearing prefix of ``data`` (a file's first bytes), or None if not yet known.

    It is the first line including its newline, or the first ``cap`` bytes when that line is
    longer. ``None`` means the first line is still being written: nothing can be shipped yet
    and an identity taken now would change when the line completes.
    """
    newline = data.find(b"\n", 0, cap)
    if newline >= 0:
        prefix = data[: newline + 1]
    elif len(data) >= cap:
        prefix = data[:cap]
    else:
        return None
    return Prefix(fingerprint(prefix), len(prefix))


def read_prefix(fd: int, cap: int) -> Prefix | None:
    """:func:`prefix_of` for an open file, read with ``pread`` so no file position is shared."""
    return prefix_of(os.pread(fd, cap, 0), cap)


def read_key(fd: int, cap: int) -> FileKey | None:
    """The identity of the open file ``fd``, or None while its first line is incomplete."""
    head = read_prefix(fd, cap)
    if head is None:
        return None
    st = os.fstat(fd)
    return FileKey(st.st_dev, st.st_ino, head.fingerprint)


def key_at(path: str, cap: int) -> FileKey | None:
    """The identity of the file at ``path`` now, or None if it is missing or has no first line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return read_key(fd, cap)
    except OSError:
        return None
    finally:
        os.close(fd)
