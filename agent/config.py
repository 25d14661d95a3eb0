"""Settings: flags, then ``APPMIXER_AUDIT_*`` environment variables, then a TOML config file.

pydantic-settings validates everything once, at start, so a bad value fails before any file
is touched; :func:`describe_error` turns its report into the one line an operator reads.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "APPMIXER_AUDIT_"
CONFIG_FILE_ENV = f"{ENV_PREFIX}CONFIG"
DEFAULT_ES_URL = "http://127.0.0.1:9200"

# Elastic's data stream naming: lowercase, no hyphen (it separates type-dataset-namespace).
_NAMESPACE_RE = re.compile(r"^[a-z0-9_]{1,64}$")


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "appmixer-audit"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the agent and the commands; names match DESIGN.md's contract."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    # --- Elasticsearch connection
    es_url: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEFAULT_ES_URL])
    es_api_key: SecretStr | None = None
    es_username: str | None = None
    es_password: SecretStr | None = None
    # Secrets as files (Kubernetes secret volumes): read once at start, never echoed.
    es_api_key_file: Path | None = None
    es_password_file: Path | None = None
    es_ca_certs: Path | None = None
    es_verify_certs: bool = True
    es_request_timeout: float = Field(default=30.0, gt=0)

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
    paths: Annotated[list[str], NoDecode] = Field(default_factory=list)
    state_dir: Path = Field(default_factory=default_state_dir)
    dlq_dir: Path | None = None
    host_name: str = Field(default_factory=socket.gethostname, min_length=1)
    envelope_key: str = Field(default="audit", min_length=1)
    fingerprint_bytes: int = Field(default=1024, ge=16, le=1 << 20)
    rescan_interval: float = Field(default=10.0, gt=0)
    close_inactive: float = Field(default=300.0, gt=0)

    # --- batching and buffering (backpressure)
    batch_max_events: int = Field(default=2000, ge=1, le=100_000)
    batch_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    batch_max_wait: float = Field(default=1.0, gt=0)
    buffer_max_events: int = Field(default=20_000, ge=1)
    buffer_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    shutdown_grace: float = Field(default=30.0, ge=0)

    # --- diff caps and redaction
    diff_max_depth: int = Field(default=32, ge=1, le=256)
    diff_max_changes: int = Field(default=500, ge=1)
    diff_max_value_chars: int = Field(default=2048, ge=16)
    redact_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    redact_values: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- tamper evidence: the HMAC key that signs chain checkpoints (never sent anywhere)
    chain_key_file: Path | None = None
    chain_checkpoint_interval: float = Field(default=60.0, gt=0)

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
        for url in value:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return [url.rstrip("/") for url in value]

    @field_validator("kibana_url")
    @classmethod
    def _kibana_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

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
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464")
        return f"{host or '0.0.0.0'}:{port}"  # noqa: S104 (an empty host means all interfaces)

    @model_validator(mode="after")
    def _secret_files(self) -> Settings:
        for name in ("es_api_key", "es_password", "kibana_api_key", "kibana_password"):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name) is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
            label = f"{name}_file ({ENV_PREFIX}{name.upper()}_FILE)"
            setattr(self, name, SecretStr(read_secret_file(path, label)))
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


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


class ConfigError(Exception):
    """A setting that cannot be used; the message is the single line shown to the operator."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from flags (``overrides``; ``None`` means not given), env and file."""
    given = {key: value for key, value in overrides.items() if value is not None and value != ()}
    previous = os.environ.get(CONFIG_FILE_ENV)
    try:
        if config_file is not None:
            if not config_file.is_file():
                raise ConfigError(f"config file {config_file} does not exist")
            os.environ[CONFIG_FILE_ENV] = str(config_file)
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read the config file: {exc}") from None
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop(CONFIG_FILE_ENV, None)
            else:
                os.environ[CONFIG_FILE_ENV] = previous


def describe_error(exc: ValidationError) -> str:
    """One line per bad setting, naming it as the operator would type it."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not name:  # a rule across settings: its input is all of them, secrets included
            lines.append(f"invalid settings: {message}")
            continue
        if error["type"] == "extra_forbidden":
            message = "is not a known setting"
        shown = "[REDACTED]" if _looks_secret(name) else _short(error.get("input"))
        env_name = ENV_PREFIX + name.upper()
        lines.append(f"invalid setting {name} ({env_name}={shown}): {message}")
    return "; ".join(lines)


def _looks_secret(name: str) -> bool:
    return any(word in name for word in ("password", "api_key", "secret", "token"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
