"""Settings: precedence, validation and the one-line error an operator sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("APPMIXER_AUDIT_"):
            monkeypatch.delenv(name)


class TestPrecedence:
    def test_defaults(self) -> None:
        """Without any input the agent targets a local node and the default namespace."""
        settings = load_settings()
        assert settings.es_url == ["http://127.0.0.1:9200"]
        assert settings.events_target == "logs-appmixer.audit-default"
        assert settings.changes_target == "logs-appmixer.audit_changes-default"
        assert settings.es_verify_certs is True

    def test_env_then_flags(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An environment variable overrides the default and a flag overrides the variable."""
        monkeypatch.setenv("APPMIXER_AUDIT_NAMESPACE", "prod")
        monkeypatch.setenv("APPMIXER_AUDIT_ES_URL", "http://a:9200, http://b:9200/")
        assert load_settings().namespace == "prod"
        assert load_settings().es_url == ["http://a:9200", "http://b:9200"]
        assert load_settings(namespace="staging").namespace == "staging"

    def test_file_is_the_weakest(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A TOML file supplies values that env and flags do not."""
        config = tmp_path / "agent.toml"
        config.write_text('namespace = "fromfile"\nbatch_max_events = 10\npaths = ["/a/*.log"]\n')
        monkeypatch.setenv("APPMIXER_AUDIT_BATCH_MAX_EVENTS", "20")
        settings = load_settings(config)
        assert settings.namespace == "fromfile"
        assert settings.batch_max_events == 20
        assert settings.paths == ["/a/*.log"]

    def test_dlq_dir_follows_state_dir(self, tmp_path: Path) -> None:
        """The dead-letter directory defaults to a folder inside the state directory."""
        settings = Settings(state_dir=tmp_path)
        assert settings.dead_letter_dir == tmp_path / "dlq"


class TestValidation:
    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("namespace", "Prod-1", "invalid setting namespace (APPMIXER_AUDIT_NAMESPACE="),
            ("es_url", "localhost:9200", "is not an http:// or https:// URL"),
            ("batch_max_events", "0", "invalid setting batch_max_events"),
            ("metrics_address", "9464", "must be HOST:PORT"),
            ("log_level", "loud", "must be one of debug"),
        ],
    )
    def test_bad_value_is_one_line(self, name: str, value: str, expected: str) -> None:
        """A bad value raises ConfigError with one line naming the setting and the reason."""
        with pytest.raises(ConfigError) as raised:
            load_settings(**{name: value})
        message = str(raised.value)
        assert expected in message
        assert "\n" not in message

    def test_secret_values_never_echoed(self) -> None:
        """A rejected password is not repeated back in the error line."""
        with pytest.raises(ConfigError) as raised:
            load_settings(es_password=["not", "a", "string"])
        assert "[REDACTED]" in str(raised.value)
        assert "'not'" not in str(raised.value)

    def test_missing_config_file(self, tmp_path: Path) -> None:
        """A config file that does not exist is named in a one-line error."""
        with pytest.raises(ConfigError, match="does not exist"):
            load_settings(tmp_path / "nope.toml")

    def test_malformed_config_file(self, tmp_path: Path) -> None:
        """Broken TOML is reported as a config file problem, not a traceback."""
        broken = tmp_path / "broken.toml"
        broken.write_text("namespace = \n")
        with pytest.raises(ConfigError, match="config file"):
            load_settings(broken)

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        """A misspelt setting in the file is rejected rather than ignored."""
        config = tmp_path / "agent.toml"
        config.write_text('namespce = "x"\n')
        with pytest.raises(ConfigError, match=r"namespce.*is not a known setting"):
            load_settings(config)


class TestCommandLine:
    def test_bad_env_value_exits_2_with_one_line(self) -> None:
        """The real CLI turns a bad setting into exit status 2 and a single stderr line."""
        import os

        env = {**os.environ, "APPMIXER_AUDIT_NAMESPACE": "Bad Name"}
        result = subprocess.run(
            [sys.executable, "-m", "agent", "setup"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("appmixer-audit: invalid setting namespace")

    def test_help_lists_contract_commands(self) -> None:
        """--help names every command of the external contract."""
        result = subprocess.run(
            [sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, check=True
        )
        for command in (
            "run",
            "normalize",
            "setup",
            "search",
            "show",
            "simulate",
            "dev-es",
            "demo",
        ):
            assert command in result.stdout
