"""Requests still executing on the node: the replay check waits for them before it looks.

Elasticsearch executes a bulk request to the end even after its client is gone: an agent
killed with SIGKILL, or a request whose answer timed out, can still be writing documents
seconds later. The replay check (:mod:`indexer.dedup`) asks the index which ids exist; asked
while such a request is still running, it misses the documents that request is about to
write, and after a rollover the replayed ``create`` lands in the new backing index beside
them: a duplicate. So every bulk request of a run carries the run's id as ``X-Opaque-Id``
(Elasticsearch shows it on the request's tasks, and in its slow and deprecation logs), the
registry keeps the ids of the last runs, and before each replay check the node's task list
is read until no bulk request of this run or of the earlier ones is left.

A request is a task only once the node has read and parsed it: the bytes of a request sent
just before its client was killed reach the node after the client is gone, and under load
the node can take a second or more to read them. So the first check of a run that starts
after a crash also waits until ``LANDING_GRACE`` has passed since the replay window was last
extended (the registry's time of it): such a request is on the task list by then.

The task list needs the cluster ``monitor`` privilege, which the writer role has. A
credential without it (or a proxy that does not pass ``_tasks`` on) cannot see the tasks:
the check then goes ahead after one warning, with the rollover hole this module closes open
again (``docs/security.md`` lists the role).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Final

from elasticsearch import ApiError, Elasticsearch

from common.log import get_logger

log = get_logger(__name__)

OPAQUE_ID_PREFIX: Final = "appmixer-audit/"
BULK_ACTIONS: Final = "indices:data/write/bulk*"
POLL_INTERVAL: Final = 0.2
# A request still running after this long is stuck on the node, not in flight: the check
# goes ahead (with a warning) rather than hold the replay back forever.
MAX_WAIT: Final = 300.0
# How long after the last request of a killed run its bytes may still be reaching the node.
LANDING_GRACE: Final = 3.0


def opaque_id(run_id: str) -> str:
    """The ``X-Opaque-Id`` of every request of the run ``run_id``."""
    return OPAQUE_ID_PREFIX + run_id


class RequestWatch:
    """Waits until the node runs no bulk request sent under the watched runs' ids."""

    def __init__(
        self,
        es: Elasticsearch,
        runs: Iterable[str],
        *,
        max_wait: float = MAX_WAIT,
        window_extended: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``window_extended``: when (wall clock) an earlier run last extended the replay
        window, from the registry; None when it left none open."""
        self.es = es
        self.watched = frozenset(opaque_id(run) for run in runs)
        self.max_wait = max_wait
        self._landed_at = None if window_extended is None else window_extended + LANDING_GRACE
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.blind = False  # the credential cannot read the task list
        self.waited = 0.0  # seconds spent waiting, over the run (for tests and the log)

    def running(self) -> int:
        """How many bulk tasks of the watched runs the node is executing now."""
        with warnings.catch_warnings():  # the task API is marked "technical preview"
            warnings.simplefilter("ignore")
            answer = self.es.tasks.list(actions=BULK_ACTIONS, detailed=True)
        return sum(
            1
            for node in _dicts(answer.body.get("nodes"))
            for task in _dicts(node.get("tasks"))
            if _header(task) in self.watched
        )

    def settle(self) -> None:
        """Return once none of the watched runs' bulk requests is executing.

        Raises the client's errors (the caller retries as for a failed check), except a
        lasting refusal of the task list (4xx), which is warned about once and then skipped.
        """
        self._let_land()
        if self.blind or not self.watched:
            return
        started = self._clock()
        try:
            first = self.running()
        except ApiError as exc:
            if not _refused(exc):
                raise  # a node in trouble: the caller retries as for the check itself
            self.blind = True
            log.warning(
                "request_watch_unavailable",
                reason=str(exc),
                hint="without the task list (the cluster monitor privilege) a request still "
                "executing after a crash can be duplicated by a rollover",
            )
            return
        if not first:
            return
        # Said at once: nothing is shipped meanwhile, for as long as MAX_WAIT.
        log.info("previous_requests_running", requests=first, max_wait=self.max_wait)
        running = first
        while running:
            if self._clock() - started >= self.max_wait:
                log.warning("previous_requests_still_running", requests=running,
                            seconds=round(self._clock() - started, 1))  # fmt: skip
                break
            self._sleep(POLL_INTERVAL)
            running = self.running()
        waited = self._clock() - started
        self.waited += waited
        log.info("previous_requests_finished", requests=first, waited=round(waited, 3))

    def _let_land(self) -> None:
        """Once per run: wait out what is left of ``LANDING_GRACE`` since an earlier run last
        extended the window (never longer than the grace, whatever the clocks say)."""
        if self._landed_at is None:
            return
        left = min(self._landed_at - self._wall(), LANDING_GRACE)
        self._landed_at = None
        if left > 0:
            self._sleep(left)
            self.waited += left
            log.info("previous_requests_landing", waited=round(left, 3))


def _refused(exc: ApiError) -> bool:
    """A refusal that asking again will not change (no privilege, a proxy without the API)."""
    return 400 <= exc.status_code < 500 and exc.status_code not in (401, 408, 429)


def _dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return []
    return [item for item in value.values() if isinstance(item, dict)]


def _header(task: dict[str, Any]) -> str | None:
    headers = task.get("headers")
    value = headers.get("X-Opaque-Id") if isinstance(headers, dict) else None
    return value if isinstance(value, str) else None
