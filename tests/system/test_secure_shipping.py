"""The agent over HTTPS with the writer's API key: a wrong CA or a revoked key costs nothing.

With either problem the agent logs one clear error, stays up retrying, and acknowledges
nothing; once the file is fixed (the right CA bundle, a new key written where the old one
was, as a Kubernetes secret update does) the same running agent picks it up and every event
arrives exactly once, with no restart. Verification turned off on purpose works, with a
warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import pytest
from elasticsearch import Elasticsearch

from devtools.simulate import write_events
from indexer.access import create_api_key
from indexer.setup import install
from tests.esnode import SecureNode
from tests.system.conftest import (
    Agent,
    assert_exactly_once,
    count,
    expected_from,
    targets,
    unique_namespace,
    wait_for_count,
)

pytestmark = pytest.mark.system

# An agent that cannot deliver would wait out the whole shutdown grace on SIGTERM; what it
# holds is still on disk (unacknowledged), so these tests need not wait long.
QUICK_STOP = {"APPMIXER_AUDIT_SHUTDOWN_GRACE": "2"}


def write_key(path: Path, key: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def agent_in(
    folder: Path, secure_es: SecureNode, namespace: str, env: dict[str, str], **options: Any
) -> Agent:
    """An agent tailing ``folder/logs/*.ndjson`` with its state in ``folder/state``."""
    return Agent(
        [str(folder / "logs" / "*.ndjson")],
        es_url=secure_es.url,
        namespace=namespace,
        state_dir=folder / "state",
        env=env,
        **options,
    )


@pytest.fixture
def prepared(secure_admin: Elasticsearch) -> str:
    """A namespace whose templates an admin installed (the writer key cannot)."""
    namespace = unique_namespace("tls")
    events, changes = targets(namespace)
    assert install(secure_admin, events, changes).ok
    return namespace


class TestWrongCertificateAuthority:
    def test_error_retry_then_everything_once(
        self, secure_es: SecureNode, secure_admin: Elasticsearch, prepared: str, tmp_path: Path
    ) -> None:
        """With a CA that did not sign the node: one TLS error, retries, nothing shipped and
        nothing acknowledged; the right CA written to the same file, the running agent
        resumes and every event lands exactly once."""
        logs = tmp_path / "logs"
        logs.mkdir()
        audit = logs / "audit.ndjson"
        with audit.open("wb") as out:
            write_events(out, 80, seed=21)
        key = create_api_key(secure_admin, "writer")
        ca_file = tmp_path / "ca.pem"
        ca_file.write_bytes(Path(certifi.where()).read_bytes())
        env = {
            **secure_es.env(api_key_file=write_key(tmp_path / "writer.key", key.encoded)),
            "APPMIXER_AUDIT_ES_CA_CERTS": str(ca_file),
            **QUICK_STOP,
        }
        agent = agent_in(tmp_path, secure_es, prepared, env)
        wait_until(lambda: len(agent.logged("setup_failed")) >= 2, 60, "retries")
        assert agent.alive(), agent.tail()
        errors = agent.logged("elasticsearch_access_failed")
        assert len(errors) == 1, agent.tail()
        assert str(errors[0]["reason"]).startswith("TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED]")
        assert "ES_CA_CERTS" in str(errors[0]["reason"])
        assert count(secure_admin, targets(prepared)[0]) == 0

        ca_file.write_bytes(secure_es.ca_certs.read_bytes())
        assert wait_for_count(secure_admin, targets(prepared)[0], 80, 120, agent) == 80
        with audit.open("ab") as out:
            write_events(out, 20, seed=22)
        assert wait_for_count(secure_admin, targets(prepared)[0], 100, 120, agent) == 100
        # The files are looked at on the first request a second or more after the last look.
        wait_until(lambda: bool(agent.logged("es_credentials_reloaded")), 30, "reload")
        reloads = agent.logged("es_credentials_reloaded")
        assert [event["files"] for event in reloads] == [[str(ca_file)]]
        assert len(agent.logged("elasticsearch_access_failed")) == 1
        assert len(agent.logged("elasticsearch_access_restored")) == 1
        assert agent.alive(), agent.tail()
        assert agent.terminate() == 0
        assert_exactly_once(secure_admin, prepared, expected_from([audit], prepared))


class TestRevokedKey:
    def test_error_retry_then_everything_once(
        self, secure_es: SecureNode, secure_admin: Elasticsearch, prepared: str, tmp_path: Path
    ) -> None:
        """A key revoked mid-run: the agent keeps retrying and loses nothing; a new key
        written to the key file, the same agent resumes. Started with a revoked key it says in
        one error that the credential is refused, and resumes the same way."""
        logs = tmp_path / "logs"
        logs.mkdir()
        audit = logs / "audit.ndjson"
        with audit.open("wb") as out:
            write_events(out, 40, seed=31)
        events_target = targets(prepared)[0]
        first = create_api_key(secure_admin, "writer")
        key_file = write_key(tmp_path / "writer.key", first.encoded)
        env = {**secure_es.env(api_key_file=key_file), **QUICK_STOP}

        agent = agent_in(tmp_path, secure_es, prepared, env)
        assert wait_for_count(secure_admin, events_target, 40, 120, agent) == 40
        assert agent.logged("setup_not_permitted"), agent.tail()

        secure_admin.security.invalidate_api_key(ids=[first.id])
        with audit.open("ab") as out:
            write_events(out, 40, seed=32)
        wait_until(
            lambda: any("401" in str(e.get("reason")) for e in agent.logged("bulk_retry")),
            90,
            "a retry refused with 401",
        )
        assert agent.alive(), agent.tail()
        assert count(secure_admin, events_target) == 40
        errors = agent.logged("elasticsearch_access_failed")
        assert len(errors) == 1, agent.tail()  # one line says what to fix; retries are warnings
        assert "refused the credential (401)" in str(errors[0]["reason"])
        assert "ES_API_KEY_FILE" in str(errors[0]["reason"])

        second = create_api_key(secure_admin, "writer")
        write_key(key_file, second.encoded)
        assert wait_for_count(secure_admin, events_target, 80, 120, agent) == 80
        assert [e["files"] for e in agent.logged("es_credentials_reloaded")] == [[str(key_file)]]
        assert len(agent.logged("elasticsearch_access_failed")) == 1
        assert len(agent.logged("elasticsearch_access_restored")) == 1
        assert agent.terminate() == 0
        assert_exactly_once(secure_admin, prepared, expected_from([audit], prepared))
        said = agent.stderr_path.read_text()
        assert first.encoded not in said
        assert second.encoded not in said

        secure_admin.security.invalidate_api_key(ids=[second.id])
        with audit.open("ab") as out:
            write_events(out, 30, seed=33)
        still_revoked = agent_in(tmp_path, secure_es, prepared, env)
        wait_until(lambda: bool(still_revoked.logged("setup_failed")), 60, "a retried start")
        errors = still_revoked.logged("elasticsearch_access_failed")
        assert len(errors) == 1, still_revoked.tail()
        assert "refused the credential (401)" in str(errors[0]["reason"])
        assert still_revoked.alive()
        assert count(secure_admin, events_target) == 80

        write_key(key_file, create_api_key(secure_admin, "writer").encoded)
        assert wait_for_count(secure_admin, events_target, 110, 120, still_revoked) == 110
        assert still_revoked.terminate() == 0
        assert_exactly_once(secure_admin, prepared, expected_from([audit], prepared))


class TestVerificationOff:
    def test_ships_and_warns(
        self, secure_es: SecureNode, secure_admin: Elasticsearch, prepared: str, tmp_path: Path
    ) -> None:
        """--no-es-verify-certs reaches a node whatever its certificate, and says so loudly."""
        logs = tmp_path / "logs"
        logs.mkdir()
        with (logs / "audit.ndjson").open("wb") as out:
            write_events(out, 10, seed=41)
        key = create_api_key(secure_admin, "writer")
        env = {
            **secure_es.env(api_key_file=write_key(tmp_path / "writer.key", key.encoded)),
            "APPMIXER_AUDIT_ES_CA_CERTS": certifi.where(),
        }
        agent = agent_in(
            tmp_path, secure_es, prepared, env, once=True, extra=["--no-es-verify-certs"]
        )
        assert agent.wait(timeout=120) == 0, agent.tail()
        warnings = agent.logged("tls_verification_disabled")
        assert len(warnings) == 1
        assert warnings[0]["level"] == "warning"
        assert count(secure_admin, targets(prepared)[0]) == 10
