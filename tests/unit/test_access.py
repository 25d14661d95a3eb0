"""API key requests limited to one role, and reading a privileges answer (no node needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import mappings
from indexer.access import ApiKey, key_request, lacking, role_descriptor


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
