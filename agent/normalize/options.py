"""The normalizer's knobs, separate from the agent's settings so the core stays import-light."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import Settings


@dataclass(frozen=True)
class NormalizeOptions:
    """Everything that shapes a document; validated once when the Normalizer is built."""

    namespace: str = "default"
    host_name: str = field(default_factory=socket.gethostname)
    envelope_key: str = "audit"
    diff_max_depth: int = 32
    diff_max_changes: int = 500
    diff_max_value_chars: int = 2048
    redact_keys: tuple[str, ...] = ()
    redact_values: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> NormalizeOptions:
        return cls(
            namespace=settings.namespace,
            host_name=settings.host_name,
            envelope_key=settings.envelope_key,
            diff_max_depth=settings.diff_max_depth,
            diff_max_changes=settings.diff_max_changes,
            diff_max_value_chars=settings.diff_max_value_chars,
            redact_keys=tuple(settings.redact_keys),
            redact_values=tuple(settings.redact_values),
        )
