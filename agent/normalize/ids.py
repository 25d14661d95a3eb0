"""Document ids: the same line always gets the same id, so a replay is a 409, not a duplicate.

* The input's own id (``id``, ``_id``, ``eventId``, ``auditId``) when present: Appmixer's ids
  are global, so one event seen through two paths is still one document.
* Otherwise ``auto-`` and 32 hex digits (128 bits) of SHA-256 over the host, the file
  identity, the byte offset and the raw line: the host is part of it, so two sidecars whose
  files happen to share an inode and offset never collide.
* An input id longer than 200 bytes becomes ``idh-`` and 40 hex digits of its SHA-256:
  Elasticsearch caps ``_id`` at 512 bytes and change ids append ``:<index>`` to it.
* Change documents: ``<event id>:<index>``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final

MAX_ID_BYTES: Final = 200
DERIVED_PREFIX: Final = "auto-"
HASHED_PREFIX: Final = "idh-"


def from_input(value: str) -> str:
    if len(value) <= MAX_ID_BYTES // 4:  # four UTF-8 bytes a character at most
        return value
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= MAX_ID_BYTES:
        return value
    return HASHED_PREFIX + hashlib.sha256(encoded).hexdigest()[:40]


@lru_cache(maxsize=256)
def _origin(host: str, file_id: str) -> bytes:
    """The hashed prefix for one file on one host: each part length-prefixed, so that no two
    tuples share bytes."""
    prefix = b""
    for part in (host, file_id):
        encoded = part.encode("utf-8", "surrogatepass")
        prefix += b"%d:%b" % (len(encoded), encoded)
    return prefix


def derived(host: str, file_id: str, offset: int, line: bytes) -> str:
    position = str(offset).encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(b"%b%d:%b" % (_origin(host, file_id), len(position), position))
    digest.update(line)
    return DERIVED_PREFIX + digest.hexdigest()[:32]


def change_id(event_id: str, index: int) -> str:
    return f"{event_id}:{index}"
