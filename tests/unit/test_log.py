"""Logging never prints credentials."""

from __future__ import annotations

from common.log import censor_secrets


class TestCensorSecrets:
    def test_secret_keys_masked(self) -> None:
        """Values under password, api key, token or authorization keys are replaced."""
        event = {"event": "x", "es_password": "hunter2", "api_key": "abc", "Authorization": "b"}
        out = censor_secrets(None, "info", dict(event))
        assert out["es_password"] == out["api_key"] == out["Authorization"] == "[REDACTED]"
        assert out["event"] == "x"

    def test_credentials_in_urls_masked(self) -> None:
        """user:password@ inside a URL, alone or in a list, is masked."""
        out = censor_secrets(
            None, "info", {"url": "https://elastic:s3cret@es:9200", "urls": ["http://u:p@h"]}
        )
        assert out["url"] == "https://[REDACTED]@es:9200"
        assert out["urls"] == ["http://[REDACTED]@h"]
