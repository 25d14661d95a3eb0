"""Credentials as settings: read from files, never echoed, TLS verification off only loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from agent.config import load_settings
from agent.errors import ConfigError
from cli.options import client_for, warn_about_exposure
from common.log import configure_logging
from common.secrets import without_userinfo

SECRET = "c2VjcmV0LWlkOnNlY3JldC1rZXktdmFsdWU="


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("APPMIXER_AUDIT_"):
            monkeypatch.delenv(name)


class TestSecretFiles:
    def test_api_key_from_a_file(self, tmp_path: Path) -> None:
        """ES_API_KEY_FILE supplies the key, trailing newline removed, kept as a secret."""
        key_file = tmp_path / "api-key"
        key_file.write_text(SECRET + "\n")
        settings = load_settings(es_api_key_file=key_file)
        assert settings.es_api_key is not None
        assert settings.es_api_key.get_secret_value() == SECRET
        assert SECRET not in repr(settings)

    def test_password_file_from_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """APPMIXER_AUDIT_ES_PASSWORD_FILE works as a Kubernetes secret volume would use it."""
        password_file = tmp_path / "password"
        password_file.write_text("s3cret-pass\n")
        monkeypatch.setenv("APPMIXER_AUDIT_ES_PASSWORD_FILE", str(password_file))
        settings = load_settings(es_username="elastic")
        assert settings.es_password is not None
        assert settings.es_password.get_secret_value() == "s3cret-pass"

    def test_value_and_file_together_is_an_error(self, tmp_path: Path) -> None:
        """Both the key and its file set is ambiguous: one line, and the key is not shown."""
        key_file = tmp_path / "api-key"
        key_file.write_text("other\n")
        with pytest.raises(ConfigError) as error:
            load_settings(es_api_key=SECRET, es_api_key_file=key_file)
        assert str(error.value) == "invalid settings: set es_api_key or es_api_key_file, not both"
        assert SECRET not in str(error.value)

    @pytest.mark.parametrize(
        ("content", "reason"),
        [(None, "cannot read it (No such file or directory)"), ("\n", "is empty")],
    )
    def test_unusable_file_names_the_setting(
        self, tmp_path: Path, content: str | None, reason: str
    ) -> None:
        """A missing or empty secret file is one line naming the setting and the path."""
        path = tmp_path / "password"
        if content is not None:
            path.write_text(content)
        with pytest.raises(ConfigError) as error:
            load_settings(es_password_file=path)
        message = str(error.value)
        assert "es_password_file (APPMIXER_AUDIT_ES_PASSWORD_FILE)" in message
        assert str(path) in message
        assert message.endswith(reason)
        assert "\n" not in message

    def test_bad_setting_beside_a_secret_does_not_echo_it(self) -> None:
        """An error in another setting never prints the secret given with it."""
        with pytest.raises(ConfigError) as error:
            load_settings(es_api_key=SECRET, namespace="Bad-Name")
        assert "namespace" in str(error.value)
        assert SECRET not in str(error.value)


class TestNoSecretOnTheCommandLine:
    def test_no_flag_takes_a_secret_value(self) -> None:
        """Only *-file flags carry credentials, so no secret ever sits in process arguments."""
        result = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "--es-api-key-file" in result.stdout
        assert "--es-password-file" in result.stdout
        assert "--es-api-key " not in result.stdout
        assert "--es-password " not in result.stdout

    def test_help_never_shows_a_secret_from_the_environment(self) -> None:
        """--help is the same whatever credentials the environment holds."""
        env = {
            **os.environ,
            "APPMIXER_AUDIT_ES_API_KEY": SECRET,
            "APPMIXER_AUDIT_ES_PASSWORD": SECRET,
        }
        for command in ("run", "setup", "search", "show"):
            result = subprocess.run(
                [sys.executable, "-m", "agent", command, "--help"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert SECRET not in result.stdout + result.stderr


class TestVerification:
    def test_verification_is_on_by_default(self) -> None:
        """An https node is verified unless told otherwise."""
        client = client_for(load_settings(es_url="https://es.example:9200"))
        try:
            assert client.transport.node_pool.get().config.verify_certs is True
        finally:
            client.close()

    def test_turning_it_off_warns_every_time(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--no-es-verify-certs works, and each client built that way logs a warning."""
        saved = structlog.get_config()  # the captured stderr closes after this test
        configure_logging("info", json=True)
        try:
            settings = load_settings(es_url="https://es.example:9200", es_verify_certs=False)
            for _ in range(2):
                client = client_for(settings)
                assert client.transport.node_pool.get().config.verify_certs is False
                client.close()
        finally:
            structlog.configure(**saved)
        assert capsys.readouterr().err.count("tls_verification_disabled") == 2


class TestCredentialsInUrls:
    def test_userinfo_is_masked(self) -> None:
        """user:password@ in a URL is replaced, the rest of the text stays."""
        text = "at https://ops:hunter2@es.example:9200/x and http://es2:9200"
        assert (
            without_userinfo(text) == "at https://[REDACTED]@es.example:9200/x and http://es2:9200"
        )

    def test_bad_url_error_hides_the_password(self) -> None:
        """A rejected ES_URL is quoted in the error without the credential it carries."""
        with pytest.raises(ConfigError) as error:
            load_settings(es_url="ftp://ops:hunter2@es.example")
        assert "hunter2" not in str(error.value)
        assert "[REDACTED]@es.example" in str(error.value)

    def test_unreachable_node_error_hides_the_password(self) -> None:
        """`cannot reach Elasticsearch at ...` never prints the URL's password."""
        result = subprocess.run(
            [sys.executable, "-m", "agent", "search", "--es-url", "http://ops:hunter2@127.0.0.1:9"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 1
        assert "hunter2" not in result.stdout + result.stderr
        assert "cannot reach Elasticsearch at http://[REDACTED]@127.0.0.1:9" in result.stderr


class TestExposureWarnings:
    def events(self, **settings: object) -> list[dict[str, object]]:
        with capture_logs() as logs:
            warn_about_exposure(load_settings(**settings))
        return logs

    def test_credentials_to_a_plain_http_node_are_a_warning(self, tmp_path: Path) -> None:
        key_file = tmp_path / "api-key"
        key_file.write_text(SECRET)
        logs = self.events(es_url="http://es.example:9200", es_api_key_file=key_file)
        (warning,) = [entry for entry in logs if entry["event"] == "credentials_over_http"]
        assert warning["log_level"] == "warning"
        assert warning["urls"] == ["http://es.example:9200"]
        assert SECRET not in repr(logs)

    def test_https_or_no_credentials_is_quiet(self, tmp_path: Path) -> None:
        key_file = tmp_path / "api-key"
        key_file.write_text(SECRET)
        assert self.events(es_url="https://es.example:9200", es_api_key_file=key_file) == []
        assert self.events(es_url="http://127.0.0.1:9200") == []

    def test_a_password_in_the_url_is_a_warning_that_does_not_repeat_it(self) -> None:
        logs = self.events(es_url="https://agent:hunter2-secret@es.example:9200")
        assert [entry["event"] for entry in logs] == ["credentials_in_url"]
        assert "hunter2-secret" not in repr(logs)
        logs = self.events(es_url="http://agent:hunter2-secret@es.example:9200")
        assert sorted(entry["event"] for entry in logs) == [
            "credentials_in_url",
            "credentials_over_http",
        ]
        assert "hunter2-secret" not in repr(logs)
