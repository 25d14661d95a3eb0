"""The shared toolkit in ``common``: durable state files, the one secret-masking policy, the
one UTC time format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.atomic import append_line, read_state, write_atomically
from common.clock import utc_iso, utc_now_iso
from common.log import censor_secrets
from common.secrets import looks_secret, without_userinfo


class TestDurableFiles:
    def test_append_creates_the_file_and_its_folder(self, tmp_path: Path) -> None:
        path = tmp_path / "state" / "copy.ndjson"
        append_line(path, b'{"n":1}')
        append_line(path, b'{"n":2}')
        assert path.read_bytes() == b'{"n":1}\n{"n":2}\n'

    def test_append_after_a_torn_line_starts_a_line_of_its_own(self, tmp_path: Path) -> None:
        path = tmp_path / "copy.ndjson"
        path.write_bytes(b'{"n":1}\n{"n":')  # a crash in the middle of an append
        append_line(path, b'{"n":3}')
        assert path.read_bytes().splitlines() == [b'{"n":1}', b'{"n":', b'{"n":3}']

    def test_replace_and_read_back(self, tmp_path: Path) -> None:
        path = tmp_path / "registry.json"
        assert read_state(path, "the registry", ValueError) is None
        write_atomically(path, b"one")
        write_atomically(path, b"two")
        assert read_state(path, "the registry", ValueError) == b"two"
        assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]  # no temp left

    def test_an_unreadable_state_names_the_file(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="cannot read the registry"):
            read_state(tmp_path, "the registry", ValueError)  # a folder, not a file


class TestOneSecretPolicy:
    @pytest.mark.parametrize(
        "name", ["es_password", "ES_API_KEY", "apiKey", "token", "Authorization", "cookie"]
    )
    def test_secret_names(self, name: str) -> None:
        assert looks_secret(name)
        assert censor_secrets(None, "info", {name: "x"})[name] == "[REDACTED]"

    @pytest.mark.parametrize("name", ["namespace", "es_url", "batch_max_wait", "user"])
    def test_plain_names(self, name: str) -> None:
        assert not looks_secret(name)

    def test_user_information_of_a_url_is_masked_in_messages_and_logs(self) -> None:
        text = "https://elastic:s3cret@es:9200 and http://key@es2:9200 and http://es3:9200"
        masked = "https://[REDACTED]@es:9200 and http://[REDACTED]@es2:9200 and http://es3:9200"
        assert without_userinfo(text) == masked
        assert censor_secrets(None, "info", {"url": text})["url"] == masked


class TestUtcTime:
    def test_milliseconds_and_a_z_whatever_the_offset(self) -> None:
        moment = datetime(2026, 1, 2, 5, 4, 5, 678_900, tzinfo=timezone(timedelta(hours=2)))
        assert utc_iso(moment) == "2026-01-02T03:04:05.678Z"

    def test_now(self) -> None:
        text = utc_now_iso()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert text.endswith("Z")
        assert abs(parsed - datetime.now(UTC)) < timedelta(minutes=1)
