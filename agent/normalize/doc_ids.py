"""Document ids: the same line always gets the same id, so a replay is a 409, not a duplicate.

* The input's own id (``id``, ``_id``, ``eventId``, ``auditId``) when present: Appmixer's ids
  are global, so one event seen through two paths is still one document.
* Otherwise ``auto-`` and 32 hex digits (128 bits) of SHA-256 over the file's content id
  (the fingerprint of its first line), the byte offset and the raw line. The host is *not*
  part of it: one file on a shared volume tailed by two pods is one set of documents (the
  second pod's copy is a 409, declared as a gap in its chain), and two files can only
  collide if they begin with the same line and hold the same line at the same offset, which
  is the same content.
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
def _origin(file_id: str) -> hashlib._Hash:
    """SHA-256 fed with the hashed prefix for one file content (length-prefixed, so no two
    share bytes): copied for each line, neither looked up in OpenSSL nor fed again."""
    encoded = file_id.encode("utf-8", "surrogatepass")
    return hashlib.sha256(b"%d:%b" % (len(encoded), encoded))


def derived(file_id: str, offset: int, line: bytes) -> str:
    position = b"%d" % offset
    digest = _origin(file_id).copy()
    digest.update(b"%d:%b" % (len(position), position))
    digest.update(line)
    return DERIVED_PREFIX + digest.hexdigest()[:32]


def change_id(event_id: str, index: int) -> str:
    return f"{event_id}:{index}"
