"""Which answers to the task list make the request watch step aside (the rest is tested on a
node: ``tests/system/test_crash.py::TestRequestWatch``, ``test_least_privilege.py``)."""

from __future__ import annotations

from typing import cast

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, Elasticsearch

from indexer.inflight import LANDING_GRACE, OPAQUE_ID_PREFIX, RequestWatch, _refused, opaque_id


def answer(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "HTTP/1.1", HttpHeaders(), 0.01, NodeConfig("http", "h", 9200))
    return ApiError("refused", meta=meta, body={})


@pytest.mark.parametrize("status", [400, 403, 404, 405])
def test_a_lasting_refusal_makes_the_watch_step_aside(status: int) -> None:
    """No privilege, or a proxy without ``_tasks``: asking again changes nothing."""
    assert _refused(answer(status))


@pytest.mark.parametrize("status", [401, 408, 429, 500, 502, 503])
def test_a_passing_problem_is_retried_like_the_check(status: int) -> None:
    """Credentials being rotated, a busy or failing node: the check's own retry covers it."""
    assert not _refused(answer(status))


def test_every_request_of_a_run_names_it() -> None:
    assert opaque_id("0f3a") == OPAQUE_ID_PREFIX + "0f3a" == "appmixer-audit/0f3a"


class TestLandingGrace:
    """A request sent just before its client died reaches the node after it: the first check
    of the next run waits until ``LANDING_GRACE`` has passed since the window was extended."""

    @staticmethod
    def watch(extended: float | None, now: float, slept: list[float]) -> RequestWatch:
        # No run watched, so settle() never reads the task list: only the grace is tested.
        return RequestWatch(
            cast(Elasticsearch, None), [], window_extended=extended,
            wall=lambda: now, sleep=slept.append,
        )  # fmt: skip

    def test_the_first_check_waits_out_the_grace_once(self) -> None:
        slept: list[float] = []
        watch = self.watch(1000.0, 1001.0, slept)
        watch.settle()
        watch.settle()
        assert slept == [pytest.approx(LANDING_GRACE - 1.0)]
        assert watch.waited == pytest.approx(LANDING_GRACE - 1.0)

    @pytest.mark.parametrize("extended", [None, 900.0])
    def test_no_window_or_an_old_one_costs_nothing(self, extended: float | None) -> None:
        slept: list[float] = []
        self.watch(extended, 1000.0, slept).settle()
        assert slept == []

    def test_a_clock_set_back_never_makes_it_wait_longer_than_the_grace(self) -> None:
        slept: list[float] = []
        self.watch(5000.0, 1000.0, slept).settle()
        assert slept == [LANDING_GRACE]
