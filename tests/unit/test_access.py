"""API key requests limited to one role, reading a privileges answer, and reporting a refused
certificate or credential (no node needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig, TlsError
from elasticsearch import AuthenticationException
from structlog.testing import capture_logs

import mappings
from indexer.access import (
    AccessReport,
    ApiKey,
    explain,
    key_request,
    lacking,
    role_descriptor,
)


class TestKeyRequest:
    def test_key_carries_exactly_the_roles_privileges(self) -> None:
        """The key's descriptor is the role file's cluster and index privileges, nothing more."""
        body = key_request("writer", None, datetime(2026, 11, 27, 16, 0, tzinfo=UTC))
        role = mappings.load("roles", "appmixer_audit_writer")
        descriptor = body["role_descriptors"]["appmixer_audit_writer"]
        assert descriptor == {"cluster": role["cluster"], "indices": role["indices"]}
        assert body["name"] == "appmixer-audit-writer-20261127T160000Z"
        assert body["metadata"] == {"managed_by": "appmixer-audit", "role": "writer"}

    def test_reader_has_no_write_privilege(self) -> None:
        """Nothing in the reader's descriptor grants a write."""
        granted = {p for entry in role_descriptor("reader")["indices"] for p in entry["privileges"]}
        assert granted.isdisjoint({"create_doc", "create", "index", "write", "delete", "all"})

    def test_given_name_is_used(self) -> None:
        """--api-key-name names the key."""
        body = key_request("reader", "sre-laptop", datetime.now(UTC))
        assert body["name"] == "sre-laptop"

    def test_repr_hides_the_key(self) -> None:
        """An ApiKey printed by accident shows its id and name, never the encoded key."""
        key = ApiKey("id1", "name1", "c2VjcmV0")
        assert "c2VjcmV0" not in repr(key)
        assert "id1" in repr(key)


class TestLacking:
    def test_targets_without_create_doc(self) -> None:
        """Targets the answer does not grant create_doc on are the ones reported."""
        answer = {
            "has_all_requested": False,
            "index": {"a": {"create_doc": True}, "b": {"create_doc": False}},
        }
        assert lacking(answer, ["a", "b", "c"]) == ["b", "c"]

    def test_all_granted(self) -> None:
        """A key that may write everywhere lacks nothing."""
        answer = {"index": {"a": {"create_doc": True}}}
        assert lacking(answer, ["a"]) == []


def refused_credential() -> AuthenticationException:
    meta = ApiResponseMeta(401, "HTTP/1.1", HttpHeaders(), 0.01, NodeConfig("https", "h", 9200))
    return AuthenticationException("security_exception", meta, {"error": "unable to authenticate"})


class TestAccessReport:
    """The one error line that says what to fix while requests keep being retried."""

    def test_one_error_per_problem_and_one_line_when_it_ends(self) -> None:
        report = AccessReport()
        tls = TlsError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        with capture_logs() as logs:
            for _ in range(3):
                report.failed(tls)
            report.failed(refused_credential())
            report.failed(refused_credential())
            report.answered()
            report.answered()
        assert [(entry["event"], entry["log_level"]) for entry in logs] == [
            ("elasticsearch_access_failed", "error"),
            ("elasticsearch_access_failed", "error"),
            ("elasticsearch_access_restored", "info"),
        ]
        assert logs[0]["reason"].startswith("TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED]")
        assert "ES_CA_CERTS" in logs[0]["reason"]
        assert logs[1]["reason"].startswith("Elasticsearch refused the credential (401)")
        assert "ES_API_KEY_FILE" in logs[1]["reason"]

    def test_failures_no_setting_can_fix_are_left_to_the_retry_warnings(self) -> None:
        report = AccessReport()
        with capture_logs() as logs:
            report.failed(ConnectionError("connection refused"))
            report.answered()
        assert logs == []
        assert report.problem is None

    def test_the_problem_found_at_start_is_not_said_twice(self) -> None:
        report = AccessReport()
        with capture_logs() as logs:
            report.report(explain(refused_credential()))
            report.failed(refused_credential())
        assert [entry["event"] for entry in logs] == ["elasticsearch_access_failed"]
