"""The secured dev node: HTTPS with a local CA, a superuser in 0600 files, and API keys."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from elasticsearch import Elasticsearch

from indexer.client import build_client
from tests.esnode import (
    SECURE_NODE_HTTP_PORT,
    SECURE_NODE_NAME,
    SECURE_NODE_TRANSPORT_PORT,
    SecureNode,
)

pytestmark = [pytest.mark.integration, pytest.mark.compat]


def dev_es(*args: str) -> subprocess.CompletedProcess[str]:
    node = [
        "--name",
        SECURE_NODE_NAME,
        "--port",
        str(SECURE_NODE_HTTP_PORT),
        "--transport-port",
        str(SECURE_NODE_TRANSPORT_PORT),
    ]
    return subprocess.run(
        [sys.executable, "-m", "agent", "dev-es", *args, *node],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


class TestSecuredDevNode:
    def test_status_names_the_credential_files(self, secure_es: SecureNode) -> None:
        """status --format json gives the HTTPS URL, the CA file, the user and the password file."""
        result = dev_es("status", "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["url"] == secure_es.url
        assert report["url"].startswith("https://127.0.0.1:")
        assert report["ca_certs"] == str(secure_es.ca_certs)
        assert report["username"] == "elastic"
        assert report["password_file"] == str(secure_es.password_file)
        assert report["features"]["security"] is True

    def test_start_with_security_reuses_and_prints_the_url(self, secure_es: SecureNode) -> None:
        """`dev-es start --security` on the running node prints its HTTPS URL as the last line."""
        result = dev_es("start", "--security")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == secure_es.url

    def test_credential_files_are_private(self, secure_es: SecureNode) -> None:
        """The CA copy and the password file are 0600 and the password is not printed."""
        for path in (secure_es.ca_certs, secure_es.password_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        result = dev_es("status", "--format", "json")
        assert secure_es.password not in result.stdout + result.stderr

    def test_anonymous_and_unverified_requests_are_refused(self, secure_es: SecureNode) -> None:
        """Without credentials the node answers 401; without the CA the TLS handshake fails."""
        context = ssl.create_default_context(cafile=str(secure_es.ca_certs))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(secure_es.url + "/_cluster/health", context=context, timeout=10)
        assert refused.value.code == 401
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(secure_es.url + "/", timeout=10)
        plain = secure_es.url.replace("https://", "http://")
        client = Elasticsearch(plain, request_timeout=10, max_retries=0)
        with pytest.raises(Exception):  # noqa: B017,PT011 (the node closes plain HTTP: any transport error)
            client.info()
        client.close()

    def test_api_keys_work(self, secure_es: SecureNode, secure_admin: Elasticsearch) -> None:
        """The .security index can be created (the analysis plugin), so API keys authenticate."""
        created = secure_admin.security.create_api_key(name="probe", expiration="1h")
        key_client = build_client(
            [secure_es.url], ca_certs=secure_es.ca_certs, api_key=created["encoded"]
        )
        try:
            who = key_client.security.authenticate()
        finally:
            key_client.close()
        assert who["authentication_type"] == "api_key"
        assert who["api_key"]["id"] == created["id"]
        secure_admin.security.invalidate_api_key(ids=[created["id"]])

    def test_plugin_gives_the_security_analyzer(self, secure_admin: Elasticsearch) -> None:
        """pattern_capture, unique and uax_url_email as .security's email analyzer uses them:
        the address kept whole, its parts captured, and the repeated address dropped."""
        body = {
            "tokenizer": "uax_url_email",
            "filter": [
                {
                    "type": "pattern_capture",
                    "preserve_original": True,
                    "patterns": ["([^@]+)", "(\\p{L}+)", "(\\d+)", "@(.+)"],
                },
                "lowercase",
                "unique",
            ],
            "text": "Maria.Novak42@ACME.com maria.novak42@acme.com",
        }
        tokens = [t["token"] for t in secure_admin.indices.analyze(body=body)["tokens"]]
        assert tokens == [
            "maria.novak42@acme.com",
            "maria.novak42",
            "maria",
            "novak",
            "42",
            "acme.com",
            "acme",
            "com",
        ]
