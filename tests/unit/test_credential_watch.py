"""A running client follows its API key, password and CA files: no restart after a fix.

No node is needed: what is checked is the connection the client would use next (its
transport and its Authorization header), which is what a request is sent with. The secured
node shows the same end to end (``tests/system/test_secure_shipping.py``).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import certifi
import pytest
from structlog.testing import capture_logs

from agent.config import load_settings
from cli.options import client_for
from indexer.client import CredentialWatch, RenewableElasticsearch, build_client
from tests.fakes import FakeClock

URL = "https://127.0.0.1:1"


def write_secret(path: Path, value: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return path


def authorization(client: RenewableElasticsearch) -> str | None:
    value = client._headers.get("authorization")
    return None if value is None else str(value)


class Watched:
    """A client whose key comes from ``key_file``, watched with a clock the test moves."""

    def __init__(self, key_file: Path, ca_file: Path | None = None) -> None:
        self.key_file, self.ca_file = key_file, ca_file
        self.clock = FakeClock()
        self.client = self.build()
        files = [key_file] if ca_file is None else [key_file, ca_file]
        self.watch = CredentialWatch(files, self.build, current=self.client, clock=self.clock)
        self.client._watch = self.watch

    def build(self) -> RenewableElasticsearch:
        key = self.key_file.read_text().strip()
        if not key:
            raise ValueError(f"{self.key_file} is empty")
        return build_client([URL], api_key=key, ca_certs=self.ca_file)

    def next_request(self, client: RenewableElasticsearch | None = None) -> None:
        """What happens first in every request: the client catches up with the files."""
        self.clock.advance(1.0)
        self.watch.renew(client or self.client)


class TestApiKeyFile:
    def test_a_rotated_key_is_used_by_the_next_request(self, tmp_path: Path) -> None:
        watched = Watched(write_secret(tmp_path / "key", "first-key"))
        before = watched.client.transport
        assert authorization(watched.client) == "ApiKey first-key"

        write_secret(watched.key_file, "second-key")
        with capture_logs() as logs:
            watched.next_request()

        assert authorization(watched.client) == "ApiKey second-key"
        assert watched.client.transport is not before
        reloaded = [entry for entry in logs if entry["event"] == "es_credentials_reloaded"]
        assert reloaded == [
            {"event": "es_credentials_reloaded", "files": [str(watched.key_file)],
             "log_level": "info"}
        ]  # fmt: skip
        assert "second-key" not in repr(logs)

    def test_files_are_not_read_again_before_the_interval(self, tmp_path: Path) -> None:
        watched = Watched(write_secret(tmp_path / "key", "first-key"))
        write_secret(watched.key_file, "second-key")
        watched.clock.advance(0.5)
        watched.watch.renew(watched.client)
        assert authorization(watched.client) == "ApiKey first-key"
        watched.clock.advance(0.5)
        watched.watch.renew(watched.client)
        assert authorization(watched.client) == "ApiKey second-key"

    def test_a_file_touched_but_unchanged_keeps_the_connection(self, tmp_path: Path) -> None:
        watched = Watched(write_secret(tmp_path / "key", "same-key"))
        before = watched.client.transport
        write_secret(watched.key_file, "same-key")
        with capture_logs() as logs:
            watched.next_request()
        assert watched.client.transport is before
        assert logs == []

    def test_a_secret_replaced_by_a_symlink_swap_is_followed(self, tmp_path: Path) -> None:
        """How Kubernetes updates a mounted secret: a new directory, then ``..data`` swapped."""
        first, second = tmp_path / "..2026_01", tmp_path / "..2026_02"
        first.mkdir()
        second.mkdir()
        write_secret(first / "key", "first-key")
        write_secret(second / "key", "second-key")
        (tmp_path / "..data").symlink_to(first.name)
        (tmp_path / "key").symlink_to("..data/key")
        watched = Watched(tmp_path / "key")

        (tmp_path / "..data_tmp").symlink_to(second.name)
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        watched.next_request()
        assert authorization(watched.client) == "ApiKey second-key"

    def test_copies_made_by_options_follow_too(self, tmp_path: Path) -> None:
        """The readiness probe and the checkpoint writer use copies of the agent's client."""
        watched = Watched(write_secret(tmp_path / "key", "first-key"))
        probe = watched.client.options(request_timeout=2.0)
        write_secret(watched.key_file, "second-key")
        watched.next_request(probe)
        assert authorization(probe) == "ApiKey second-key"
        watched.watch.renew(watched.client)
        assert authorization(watched.client) == "ApiKey second-key"
        assert probe.transport is watched.client.transport

    def test_a_copy_with_its_own_credential_is_left_alone(self, tmp_path: Path) -> None:
        watched = Watched(write_secret(tmp_path / "key", "first-key"))
        other = watched.client.options(api_key="someone-else")
        assert other._watch is None
        assert authorization(other) == "ApiKey someone-else"


class TestUnusableReplacement:
    def test_an_empty_file_keeps_the_old_key_until_a_good_one_comes(self, tmp_path: Path) -> None:
        watched = Watched(write_secret(tmp_path / "key", "first-key"))
        watched.key_file.write_text("")
        with capture_logs() as logs:
            watched.next_request()
            watched.next_request()  # the same bad content is reported once, not every second
        assert authorization(watched.client) == "ApiKey first-key"
        assert [entry["event"] for entry in logs] == ["es_credentials_unusable"]
        assert logs[0]["log_level"] == "error"
        assert str(watched.key_file) in logs[0]["reason"]

        write_secret(watched.key_file, "second-key")
        watched.next_request()
        assert authorization(watched.client) == "ApiKey second-key"

    def test_a_missing_file_keeps_the_old_key(self, tmp_path: Path) -> None:
        watched = Watched(write_secret(tmp_path / "key", "first-key"))
        watched.key_file.unlink()
        with capture_logs() as logs:
            watched.next_request()
        assert authorization(watched.client) == "ApiKey first-key"
        assert [entry["event"] for entry in logs] == ["es_credentials_unusable"]


class TestRetiredConnections:
    def test_closed_one_renewal_later_and_all_on_close(self, tmp_path: Path) -> None:
        """A request on another thread may still use the connection just replaced."""
        watched = Watched(write_secret(tmp_path / "key", "key-0"))
        transports = [watched.client.transport]
        for n in (1, 2):
            write_secret(watched.key_file, f"key-{n}")
            watched.next_request()
            transports.append(watched.client.transport)
        assert pool_closed(transports[0])
        assert not pool_closed(transports[1])
        assert not pool_closed(transports[2])
        watched.client.close()
        assert pool_closed(transports[1])
        assert pool_closed(transports[2])


def pool_closed(transport: object) -> bool:
    """Whether every node's connection pool of ``transport`` was closed."""
    nodes = list(transport.node_pool.all())  # type: ignore[attr-defined]
    return all(node.pool.pool is None for node in nodes)


class TestClientFor:
    """What ``run`` and every command build from the settings."""

    def test_watches_the_key_password_and_ca_files(self, tmp_path: Path) -> None:
        key = write_secret(tmp_path / "key", "first-key")
        settings = load_settings(es_url=URL, es_api_key_file=key, es_ca_certs=Path(certifi.where()))
        client = client_for(settings)
        assert isinstance(client, RenewableElasticsearch)
        assert client._watch is not None
        assert client._watch.files == [key, Path(certifi.where())]

    def test_a_rotated_key_file_reaches_a_running_client(self, tmp_path: Path) -> None:
        key = write_secret(tmp_path / "key", "first-key")
        client = client_for(load_settings(es_url=URL, es_api_key_file=key))
        assert isinstance(client, RenewableElasticsearch)
        assert client._watch is not None
        write_secret(key, "second-key")
        time.sleep(1.05)  # the files are looked at once a second
        client._watch.renew(client)
        assert authorization(client) == "ApiKey second-key"

    def test_a_rotated_password_file_reaches_a_running_client(self, tmp_path: Path) -> None:
        password = write_secret(tmp_path / "password", "first")
        settings = load_settings(es_url=URL, es_username="agent", es_password_file=password)
        client = client_for(settings)
        assert isinstance(client, RenewableElasticsearch)
        assert client._watch is not None
        write_secret(password, "second")
        time.sleep(1.05)
        client._watch.renew(client)
        assert authorization(client) == "Basic " + base64.b64encode(b"agent:second").decode()

    def test_a_ca_file_that_is_not_a_certificate_is_refused(self, tmp_path: Path) -> None:
        """A bad bundle would otherwise fail only per request, with the old one discarded."""
        ca = tmp_path / "ca.pem"
        ca.write_bytes(Path(certifi.where()).read_bytes())
        client = client_for(load_settings(es_url=URL, es_ca_certs=ca))
        assert isinstance(client, RenewableElasticsearch)
        assert client._watch is not None
        before = client.transport
        ca.write_text("not a certificate\n")
        time.sleep(1.05)
        with capture_logs() as logs:
            client._watch.renew(client)
        assert client.transport is before
        assert [entry["event"] for entry in logs] == ["es_credentials_unusable"]
        assert "holds no usable certificate" in logs[0]["reason"]

    def test_secrets_given_as_values_are_not_watched(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("APPMIXER_AUDIT_ES_API_KEY", "inline-key")
        client = client_for(load_settings(es_url=URL))
        assert isinstance(client, RenewableElasticsearch)
        assert client._watch is None
        assert authorization(client) == "ApiKey inline-key"
