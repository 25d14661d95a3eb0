"""The chain key file, followed while the agent runs: a rotated key is used without a restart.

Kubernetes updates a mounted Secret by swapping a symlink; an operator rewrites the file or
renames a new one over it. Either way the file's next read holds the new key, so the agent
looks now and then (at most every ``interval`` seconds, from the loop that signs) and hands
a changed, usable key to the signer. A replacement it cannot use (missing, unreadable, too
short) is one error naming the file and why, and signing goes on under the current key:
losing the signatures would be worse than signing a little longer with the old key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from chain.checkpoint import ChainKey, KeyFileError
from common.log import get_logger

log = get_logger("chain")


class KeyFileWatch:
    """Reads ``path`` now and then; :meth:`changed` returns a new key once, when there is one."""

    def __init__(
        self,
        path: Path,
        current: ChainKey,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.key_id = current.key_id
        self.interval = interval
        self._clock = clock
        self._looked = clock()
        self._problem: str | None = None

    def changed(self) -> ChainKey | None:
        """The key the file now holds when it differs from the one in use, else None."""
        now = self._clock()
        if now - self._looked < self.interval:
            return None
        self._looked = now
        try:
            key = ChainKey.from_file(self.path)
        except KeyFileError as exc:
            if str(exc) != self._problem:
                self._problem = str(exc)
                log.error(
                    "chain_key_unusable",
                    error=str(exc),
                    key_id=self.key_id,
                    action="checkpoints stay signed with the current key until the file holds "
                    "a usable one",
                )
            return None
        self._problem = None
        if key.key_id == self.key_id:
            return None
        self.key_id = key.key_id
        return key
