"""Logging never prints credentials, and every logger is named after its module."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_every_logger_is_named_after_its_module() -> None:
    """``get_logger(__name__)`` everywhere: a log line's logger is the module that wrote it."""
    root = Path(__file__).resolve().parents[2]
    calls = [
        (str(path.relative_to(root)), call)
        for package in ("cli", "agent", "indexer", "chain", "common", "devtools")
        for path in (root / package).rglob("*.py")
        for call in re.findall(r"get_logger\(([^)]*)\)", path.read_text())
        if path.name != "log.py"
    ]
    assert calls
    assert [(where, call) for where, call in calls if call != "__name__"] == []
