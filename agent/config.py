"""Settings: flags, then ``APPMIXER_AUDIT_*`` environment variables, then a TOML config file.

pydantic validates everything once, at start, so a bad value fails before any file is
touched. Every number has bounds a working agent can live with (an infinite timeout or a
week-long batch wait is a typo, not a choice). The config file, named by ``--config`` or
``APPMIXER_AUDIT_CONFIG``, must be a readable regular file; an ``APPMIXER_AUDIT_*`` variable
that names no setting is refused like an unknown key in the file. :class:`ConfigError`
carries the one line an operator reads, naming where the bad value came from: the flag, the
variable, or the file and line.
"""

from __future__ import annotations

import math
import os
import re
import socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.errors import ConfigError
from common.secrets import MASK, looks_secret, without_userinfo

ENV_PREFIX = "APPMIXER_AUDIT_"
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG"
DEFAULT_ES_URL = "http://127.0.0.1:9200"

# APPMIXER_AUDIT_* variables that are not agent settings: the config file's name, and knobs
# of the build, the image tag, the development node and the test suite (CI exports some of
# them to every process it starts). Anything else must be a setting.
NON_SETTING_VARIABLES = frozenset(
    {
        "CONFIG",
        "COMPILE",
        "ES_DISTRIBUTION",
        "CACHE_DIR",
        "SAMPLE",
        "TEST_PORT_OFFSET",
        "TEST_ES_VERSION",
        "TEST_BUILD",
        "COMPILED_TREE",
        "KEEP_TEST_NODE",
        "KEEP_TEST_DATA",
        "TEST_IMAGE",
        "ES_IMAGE",
        "ECS_FLAT",
        "VERSION",
    }
)

MIB = 1024 * 1024
HOUR = 3600.0
DAY = 86_400.0

# Elastic's data stream naming: lowercase, no hyphen (it separates type-dataset-namespace).
_NAMESPACE_RE = re.compile(r"^[a-z0-9_]{1,64}$")


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "appmixer-audit"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_url(url: str) -> str:
    """An ``http(s)://host[:port]`` URL with a port in range; the trailing slash dropped."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
    if port == 0:
        raise ValueError(f"{url!r} has port 0")
    return url.rstrip("/")


def _seconds(default: float, *, low: float, high: float, strict: bool = True) -> Any:
    """A finite number of seconds within [low, high] (above low when ``strict``)."""
    if strict:
        return Field(default=default, gt=low, le=high, allow_inf_nan=False)
    return Field(default=default, ge=low, le=high, allow_inf_nan=False)


class Settings(BaseModel):
    """Every knob of the agent and the commands; names match the settings tables of
    README.md ("Configuration") and docs/agent.md ("Tuning").

    Values given to the constructor win over ``APPMIXER_AUDIT_<NAME>`` variables (any case,
    taken as they are: lists are comma-separated), which win over the config file named by
    ``APPMIXER_AUDIT_CONFIG``. The three are read here rather than by pydantic-settings,
    whose import (and the asyncio and dotenv it brings) was about 45 ms of every start.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**_sourced(type(self), values))

    # --- Elasticsearch connection
    es_url: list[str] = Field(default_factory=lambda: [DEFAULT_ES_URL])
    es_api_key: SecretStr | None = None
    es_username: str | None = None
    es_password: SecretStr | None = None
    # Secrets as files (Kubernetes secret volumes): read once at start, never echoed.
    es_api_key_file: Path | None = None
    es_password_file: Path | None = None
    es_ca_certs: Path | None = None
    es_verify_certs: bool = True
    es_request_timeout: float = _seconds(30.0, low=0, high=HOUR)

    # --- where documents go
    namespace: str = "default"

    # --- Kibana, where setup imports the dashboards (credentials default to the ES ones)
    kibana_url: str | None = None
    kibana_space: str = "default"
    kibana_api_key: SecretStr | None = None
    kibana_username: str | None = None
    kibana_password: SecretStr | None = None
    kibana_api_key_file: Path | None = None
    kibana_password_file: Path | None = None

    # --- inputs and local state
    paths: list[str] = Field(default_factory=list)
    state_dir: Path = Field(default_factory=default_state_dir)
    dlq_dir: Path | None = None
    host_name: str = Field(default_factory=socket.gethostname, min_length=1)
    envelope_key: str = Field(default="audit", min_length=1)
    fingerprint_bytes: int = Field(default=1024, ge=16, le=1 << 20)
    rescan_interval: float = _seconds(10.0, low=0, high=HOUR)
    close_inactive: float = _seconds(300.0, low=0, high=7 * DAY)
    line_max_bytes: int = Field(default=4 * MIB, ge=1024, le=64 * MIB)

    # --- batching and buffering (backpressure)
    batch_max_events: int = Field(default=2000, ge=1, le=100_000)
    batch_max_bytes: int = Field(default=5 * MIB, ge=1024, le=100 * MIB)
    batch_max_wait: float = _seconds(0.25, low=0, high=300.0)
    buffer_max_events: int = Field(default=2000, ge=1, le=1_000_000)
    buffer_max_bytes: int = Field(default=8 * MIB, ge=1024, le=4096 * MIB)
    shutdown_grace: float = _seconds(30.0, low=0, high=HOUR, strict=False)

    # --- diff caps and redaction
    diff_max_depth: int = Field(default=32, ge=1, le=256)
    diff_max_changes: int = Field(default=500, ge=1, le=100_000)
    diff_max_value_chars: int = Field(default=2048, ge=16, le=MIB)
    redact_keys: list[str] = Field(default_factory=list)
    redact_values: list[str] = Field(default_factory=list)

    # --- tamper evidence: the HMAC key that signs chain checkpoints (never sent anywhere)
    chain_key_file: Path | None = None
    # at least a second, at most a day, finite: it bounds what verify may count as not yet
    # signed (two intervals), so "never" (inf) is refused
    chain_checkpoint_interval: float = Field(default=60.0, ge=1, le=86_400, allow_inf_nan=False)

    # --- observability
    metrics_address: str | None = None
    log_level: str = "info"

    @field_validator("es_url", "paths", "redact_keys", "redact_values", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("es_url")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one URL")
        return [check_url(url) for url in value]

    @field_validator("kibana_url")
    @classmethod
    def _kibana_url(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_url(value)

    @field_validator("redact_keys", "redact_values")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return value

    @field_validator("kibana_space")
    @classmethod
    def _kibana_space(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9_-]{1,100}$", value):
            raise ValueError("must be a Kibana space id: lowercase letters, digits, _ and -")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.match(value):
            raise ValueError(
                "must be 1-64 characters of lowercase letters, digits and underscores "
                "(it becomes part of the data stream name)"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9464")
        host = host.removeprefix("[").removesuffix("]")
        return f"{host or '0.0.0.0'}:{port}"  # noqa: S104 (an empty host means all interfaces)

    @model_validator(mode="after")
    def _secret_files(self) -> Settings:
        for name in ("es_api_key", "es_password", "kibana_api_key", "kibana_password"):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name) is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
            setattr(self, name, SecretStr(secret_from_file(name, path)))
        return self

    @property
    def dead_letter_dir(self) -> Path:
        return self.dlq_dir if self.dlq_dir is not None else self.state_dir / "dlq"

    @property
    def events_target(self) -> str:
        return f"logs-appmixer.audit-{self.namespace}"

    @property
    def changes_target(self) -> str:
        return f"logs-appmixer.audit_changes-{self.namespace}"

    @property
    def checkpoints_target(self) -> str:
        """Signed chain checkpoints: outside ``logs-*``, so no SIEM rule reads them as events."""
        return f"appmixer-audit.checkpoints-{self.namespace}"


def _sourced(settings_cls: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """The constructor's values over the environment's over the config file's."""
    values: dict[str, Any] = {}
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        values.update(ConfigFile.read(Path(config_file)).values)
    environ = {name.lower(): value for name, value in os.environ.items()}
    prefix = ENV_PREFIX.lower()
    for field in settings_cls.model_fields:
        value = environ.get(prefix + field)
        if value is not None:
            values[field] = value
    values.update(given)
    return values


def secret_from_file(name: str, path: Path) -> str:
    """The secret ``name`` (e.g. ``es_api_key``) as the file given by ``name_file`` holds it now."""
    return read_secret_file(path, f"{name}_file ({ENV_PREFIX}{name.upper()}_FILE)")


def read_secret_file(path: Path, setting: str) -> str:
    """A secret file's content, newline removed; errors name the file, never the content."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ValueError(f"{setting} {path}: cannot read it ({reason})") from None
    if not value:
        raise ValueError(f"{setting} {path} is empty")
    return value


class ConfigFile:
    """A TOML config file's values and the line each key is on (for error messages)."""

    def __init__(self, path: Path, values: dict[str, Any], lines: dict[str, int]) -> None:
        self.path = path
        self.values = values
        self.lines = lines

    @classmethod
    def read(cls, path: Path, origin: str = CONFIG_FILE_ENV) -> ConfigFile:
        """Read and parse ``path``; anything but a readable regular TOML file is an error."""
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ConfigError(f"config file {path} (from {origin}) does not exist") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} (from {origin}): {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            raise ConfigError(f"config file {path} (from {origin}) is a directory")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"config file {path} (from {origin}) is not a regular file")
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"config file {path} (from {origin}): {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        import tomllib  # only when there is a file

        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        lines: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            match = re.match(r"\s*[\"']?([A-Za-z0-9_-]+)[\"']?\s*=", line)
            if match:
                lines.setdefault(match.group(1), number)
        return cls(path, values, lines)

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line is not None else str(self.path)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``; ``None`` means not given), env and file."""
    given = {key: value for key, value in overrides.items() if value is not None and value != ()}
    check_variables(os.environ)
    previous = os.environ.get(CONFIG_FILE_ENV)
    config: ConfigFile | None = None
    if config_file is not None:
        config = ConfigFile.read(config_file, origin="--config")
    elif previous:
        config = ConfigFile.read(Path(previous))
    try:
        if config is not None:
            os.environ[CONFIG_FILE_ENV] = str(config.path)
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, given=given, config=config)) from None
    finally:
        if previous is None:
            os.environ.pop(CONFIG_FILE_ENV, None)
        else:
            os.environ[CONFIG_FILE_ENV] = previous


def check_variables(environ: Mapping[str, str]) -> None:
    """Refuse an ``APPMIXER_AUDIT_*`` variable that names no setting (a typo is not silent)."""
    known = set(Settings.model_fields)
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        suffix = name[len(ENV_PREFIX) :].upper()
        field = suffix.lower()
        if suffix in NON_SETTING_VARIABLES or field in known:
            continue
        import difflib  # only for the refusal

        close = difflib.get_close_matches(field, known, n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
        raise ConfigError(f"environment variable {name} is not a known setting{hint}")


_FLAGS = {"paths": "--path", "redact_keys": "--redact-key", "redact_values": "--redact-value"}


def flag_name(field: str) -> str:
    """The command-line flag that sets ``field``."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def describe_error(
    exc: ValidationError,
    *,
    given: Mapping[str, Any] | None = None,
    config: ConfigFile | None = None,
) -> str:
    """One line per bad setting, naming it and where its value came from."""
    given = given or {}
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        field = str(error["loc"][0]) if error["loc"] else name
        message = error["msg"].removeprefix("Value error, ")
        if not name:  # a rule across settings: its input is all of them, secrets included
            lines.append(f"invalid settings: {message}")
            continue
        if error["type"] == "extra_forbidden":
            message = "is not a known setting"
        if error["type"] == "finite_number":
            message = "must be a finite number"
        shown = MASK if looks_secret(name) else _short(error.get("input"))
        env_name = ENV_PREFIX + field.upper()
        if field in given:
            source = f"{flag_name(field)} {shown}"
        elif config is not None and error["type"] == "extra_forbidden":
            source = config.where(field)
        elif env_name in os.environ:
            source = f"{env_name}={shown}"
        elif config is not None and field in config.values:
            source = f"{config.where(field)}: {field} = {shown}"
        else:
            source = f"default {shown}"
        lines.append(f"invalid setting {name} ({source}): {message}")
    return without_userinfo("; ".join(lines))


def _short(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
