"""The chain key file, followed while the agent runs: a rotated key is used without a restart.

Kubernetes updates a mounted Secret by swapping a symlink; an operator rewrites the file or
renames a new one over it. Either way the file's next read holds the new key, so the agent
looks now and then (at most every ``interval`` seconds, from the loop that signs) and hands
a changed, usable key to the signer. A replacement it cannot use (missing, unreadable, too
short) is one error per change, naming the file and why, and signing goes on under the
current key: losing the signatures would be worse than signing a little longer with the old
key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from chain.checkpoint import ChainKey, KeyFileError
from common.filewatch import ContentWatch
from common.log import get_logger

log = get_logger(__name__)


class KeyFileWatch:
    """Follows ``path``; :meth:`changed` returns a new key once, when the file holds one.

    Built before the key is read (:meth:`open`), so a replacement arriving in between is
    still seen as new content at the first look.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._content = ContentWatch([self.path], interval=interval, clock=clock)
        self.key_id = ""

    @classmethod
    def open(
        cls, path: Path, *, interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> tuple[ChainKey, KeyFileWatch]:
        """The key the file holds now, and a watch on it; ``KeyFileError`` if unusable."""
        watch = cls(path, interval=interval, clock=clock)
        key = ChainKey.from_file(watch.path)
        watch.key_id = key.key_id
        return key, watch

    def changed(self) -> ChainKey | None:
        """The key the file now holds when it differs from the one in use, else None."""
        if not self._content.changed():
            return None
        try:
            key = ChainKey.from_file(self.path)
        except KeyFileError as exc:
            log.error(
                "chain_key_unusable",
                error=str(exc),
                key_id=self.key_id,
                action="checkpoints stay signed with the current key until the file holds "
                "a usable one",
            )
            return None
        if key.key_id == self.key_id:
            return None
        self.key_id = key.key_id
        return key
