"""Which answers to the task list make the request watch step aside (the rest is tested on a
node: ``tests/system/test_crash.py::TestRequestWatch``, ``test_least_privilege.py``)."""

from __future__ import annotations

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from indexer.inflight import OPAQUE_ID_PREFIX, _refused, opaque_id


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
