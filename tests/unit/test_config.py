"""Settings: precedence, validation and the one-line error an operator sees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import NON_SETTING_VARIABLES, Settings, load_settings
from agent.errors import ConfigError


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
            ("namespace", "Prod-1", "invalid setting namespace (--namespace 'Prod-1'): must be"),
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
        with pytest.raises(ConfigError, match=rf"config file {broken} is not valid TOML.*line 1"):
            load_settings(broken)

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        """A misspelt setting in the file is rejected rather than ignored."""
        config = tmp_path / "agent.toml"
        config.write_text('namespce = "x"\n')
        with pytest.raises(ConfigError) as raised:
            load_settings(config)
        assert str(raised.value) == (
            f"invalid setting namespce ({config}:1): is not a known setting"
        )


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
        assert lines[0].startswith(
            "appmixer-audit: invalid setting namespace (APPMIXER_AUDIT_NAMESPACE='Bad Name')"
        )

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


class TestBounds:
    @pytest.mark.parametrize(
        ("variable", "value", "expected"),
        [
            ("ES_REQUEST_TIMEOUT", "inf", "must be a finite number"),
            ("ES_REQUEST_TIMEOUT", "nan", "must be a finite number"),
            ("ES_REQUEST_TIMEOUT", "1e12", "less than or equal to 3600"),
            ("ES_REQUEST_TIMEOUT", "0", "greater than 0"),
            ("BATCH_MAX_WAIT", "1e9", "less than or equal to 300"),
            ("RESCAN_INTERVAL", "-1", "greater than 0"),
            ("CLOSE_INACTIVE", "inf", "must be a finite number"),
            ("SHUTDOWN_GRACE", "-5", "greater than or equal to 0"),
            ("BATCH_MAX_BYTES", str(1 << 30), "less than or equal to"),
            ("BUFFER_MAX_EVENTS", "0", "greater than or equal to 1"),
            ("LINE_MAX_BYTES", "10", "greater than or equal to 1024"),
            ("LINE_MAX_BYTES", str(1 << 30), "less than or equal to"),
            ("DIFF_MAX_CHANGES", "100000000", "less than or equal to"),
            ("CHAIN_CHECKPOINT_INTERVAL", "inf", "must be a finite number"),
            ("CHAIN_CHECKPOINT_INTERVAL", "0.1", "greater than or equal to 1"),
            ("CHAIN_CHECKPOINT_INTERVAL", "1e9", "less than or equal to 86400"),
        ],
    )
    def test_out_of_bounds_is_refused_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
    ) -> None:
        """An infinite, negative or absurd number is refused, naming the variable it came from."""
        monkeypatch.setenv(f"APPMIXER_AUDIT_{variable}", value)
        with pytest.raises(ConfigError) as raised:
            load_settings()
        message = str(raised.value)
        assert f"(APPMIXER_AUDIT_{variable}='{value}')" in message
        assert expected in message
        assert "\n" not in message

    def test_defaults_are_within_bounds(self) -> None:
        """Every default passes its own bounds (validate_default is on)."""
        settings = load_settings()
        assert settings.es_request_timeout == 30.0
        assert settings.line_max_bytes == 4 * 1024 * 1024


class TestSources:
    def test_flag_is_named_as_a_flag(self) -> None:
        """A bad flag value names the flag, not a variable."""
        with pytest.raises(ConfigError, match=r"\(--batch-max-wait 0\.0\)"):
            load_settings(batch_max_wait=0.0)

    def test_file_value_is_named_by_file_and_line(self, tmp_path: Path) -> None:
        """A bad value from the file names the file and the line it is on."""
        config = tmp_path / "agent.toml"
        config.write_text('# comment\nnamespace = "ok"\n\nes_request_timeout = 1e12\n')
        with pytest.raises(ConfigError) as raised:
            load_settings(config)
        assert f"({config}:4: es_request_timeout = 1000000000000.0)" in str(raised.value)

    def test_variable_wins_over_file_and_is_named(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the variable overrides the file, the variable is the one blamed."""
        config = tmp_path / "agent.toml"
        config.write_text('namespace = "fine"\n')
        monkeypatch.setenv("APPMIXER_AUDIT_NAMESPACE", "Not Fine")
        with pytest.raises(ConfigError, match=r"\(APPMIXER_AUDIT_NAMESPACE='Not Fine'\)"):
            load_settings(config)

    @pytest.mark.parametrize("value", ["a(", "[z-a]", "(?P<x>"])
    def test_bad_redaction_regex(self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        """A redaction pattern that does not compile is a configuration error (exit 2)."""
        monkeypatch.setenv("APPMIXER_AUDIT_REDACT_KEYS", value)
        with pytest.raises(ConfigError, match="is not a valid regular expression"):
            load_settings()

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("http://127.0.0.1:99999", "Port out of range"),
            ("http://127.0.0.1:notaport", "Port could not be cast"),
            ("http://[::1", "Invalid IPv6 URL"),
            ("http://", "with a host"),
            ("ftp://host:21", "http:// or https://"),
            ("http://host:0", "has port 0"),
        ],
    )
    def test_unparseable_urls(self, url: str, reason: str) -> None:
        """A URL that cannot be used is refused at load time, with the parser's reason."""
        with pytest.raises(ConfigError, match=rf"\(--es-url .*\): .*{re.escape(reason)}"):
            load_settings(es_url=url)
        with pytest.raises(ConfigError, match=re.escape(reason)):
            load_settings(kibana_url=url)


class TestConfigFileNamed:
    def test_missing_file_from_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """APPMIXER_AUDIT_CONFIG naming a missing file is an error, not silently ignored."""
        monkeypatch.setenv("APPMIXER_AUDIT_CONFIG", str(tmp_path / "gone.toml"))
        with pytest.raises(ConfigError) as raised:
            load_settings()
        assert str(raised.value) == (
            f"config file {tmp_path / 'gone.toml'} (from APPMIXER_AUDIT_CONFIG) does not exist"
        )

    def test_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A directory named as the config file is refused."""
        monkeypatch.setenv("APPMIXER_AUDIT_CONFIG", str(tmp_path))
        with pytest.raises(ConfigError, match="is a directory"):
            load_settings()
        monkeypatch.delenv("APPMIXER_AUDIT_CONFIG")
        with pytest.raises(ConfigError, match=r"\(from --config\) is a directory"):
            load_settings(tmp_path)

    def test_fifo(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A FIFO is refused without being opened (opening one would block)."""
        fifo = tmp_path / "config.fifo"
        os.mkfifo(fifo)
        monkeypatch.setenv("APPMIXER_AUDIT_CONFIG", str(fifo))
        with pytest.raises(ConfigError, match="is not a regular file"):
            load_settings()

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A binary file is named as not being text."""
        config = tmp_path / "agent.toml"
        config.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(ConfigError, match="is not UTF-8 text"):
            load_settings(config)


class TestUnknownVariables:
    def test_unknown_variable_is_refused_with_a_suggestion(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A misspelt APPMIXER_AUDIT_* variable is refused like an unknown key in the file."""
        monkeypatch.setenv("APPMIXER_AUDIT_NAMESPAC", "prod")
        with pytest.raises(ConfigError) as raised:
            load_settings()
        assert str(raised.value) == (
            "environment variable APPMIXER_AUDIT_NAMESPAC is not a known setting "
            "(did you mean APPMIXER_AUDIT_NAMESPACE?)"
        )

    @pytest.mark.parametrize(
        "name",
        [
            "APPMIXER_AUDIT_TEST_PORT_OFFSET",
            "APPMIXER_AUDIT_TEST_IMAGE",
            "APPMIXER_AUDIT_ECS_FLAT",
            "APPMIXER_AUDIT_VERSION",
            "APPMIXER_AUDIT_ES_PASSWORD_FILE",
        ],
    )
    def test_known_non_settings_pass(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        """Variables of the tooling, and settings such as ES_PASSWORD_FILE, are not refused."""
        monkeypatch.setenv(name, "1")
        if name.endswith("_FILE"):
            with pytest.raises(ConfigError, match="ES_PASSWORD_FILE"):
                load_settings()  # known, so it is read (and this path is no file)
        else:
            assert load_settings().namespace == "default"


class TestEveryVariableTheProjectUses:
    def test_no_project_variable_is_refused(self) -> None:
        """Every APPMIXER_AUDIT_* name the repository itself uses (CI, compose, tests) is a
        setting or a known tooling variable, so exporting it never stops an agent."""
        root = Path(__file__).resolve().parents[2]
        found: set[str] = set()
        for path in root.rglob("*"):
            if any(part in {".git", ".venv", "node_modules"} for part in path.parts):
                continue
            if path.is_file() and path.suffix in {"", ".py", ".yml", ".yaml", ".md", ".toml"}:
                try:
                    text = path.read_text(errors="ignore")
                except OSError:
                    continue
                found.update(re.findall(r"APPMIXER_AUDIT_[A-Z][A-Z_]*[A-Z]", text))
        known = {field.upper() for field in Settings.model_fields} | NON_SETTING_VARIABLES
        deliberate_typos = {"APPMIXER_AUDIT_NAMESPAC"}  # the tests' own misspelling
        unknown = {
            name for name in found - deliberate_typos if name[len("APPMIXER_AUDIT_") :] not in known
        }
        assert unknown == set()
