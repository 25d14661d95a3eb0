"""Checks ``run`` makes before any work, so a mistake is one line at start, not a stuck agent.

Each failed check is a :class:`PreflightError` whose message is the line shown (exit 2):
an empty path pattern, a state or dead-letter directory that cannot be created or written
(a read-only volume would otherwise log ``checkpoint_write_failed`` forever while nothing
ships), a CA file that cannot be read or holds no certificate (otherwise every request
fails with a TLS error, forever). Binding the metrics address is checked where the server
is created, before the pipeline starts.

:func:`input_warnings` looks at what the patterns match now. Nothing matched, or a pattern
naming a directory, is not an error (a sidecar may start before its service writes), but
silence would mislead, so each is one warning.
"""

from __future__ import annotations

import os
import ssl
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agent.config import Settings
from agent.files.discover import expand, normalize_patterns


class PreflightError(Exception):
    """A setting that cannot work on this machine; the message is one line."""


def check(settings: Settings) -> None:
    """Every start-up check, in the order an operator would fix them."""
    try:
        normalize_patterns(settings.paths)
    except ValueError as exc:
        raise PreflightError(f"--path: {exc}") from None
    writable_dir(settings.state_dir, "state dir (--state-dir)")
    writable_dir(settings.dead_letter_dir, "dead-letter dir (--dlq-dir)")
    if settings.es_ca_certs is not None:
        readable_ca(settings.es_ca_certs)


def writable_dir(directory: Path, what: str) -> None:
    """Create ``directory`` if needed and prove a file can be created, written and removed."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PreflightError(f"{what} {directory} cannot be created: {_why(exc)}") from None
    if not directory.is_dir():
        raise PreflightError(f"{what} {directory} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-check.", suffix=".tmp")
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            Path(probe).unlink()
    except OSError as exc:
        raise PreflightError(f"{what} {directory} is not writable: {_why(exc)}") from None


def readable_ca(path: Path) -> None:
    """The CA bundle exists, is a readable regular file, and holds at least one certificate."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise PreflightError(f"CA file (ES_CA_CERTS) {path} is not a regular file")
        path.read_bytes()
    except OSError as exc:
        raise PreflightError(f"CA file (ES_CA_CERTS) {path} cannot be read: {_why(exc)}") from None
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        raise PreflightError(
            f"CA file (ES_CA_CERTS) {path} holds no usable certificate: {exc}"
        ) from None


def input_warnings(patterns: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """(event, fields) for each pattern that names a directory or matches no file now."""
    warnings: list[tuple[str, dict[str, str]]] = []
    for pattern in normalize_patterns(patterns):
        if Path(pattern).is_dir():
            hint = f"{pattern.rstrip('/')}/*.log"
            warnings.append(("path_is_directory", {"pattern": pattern, "hint": f"try {hint}"}))
        elif not expand([pattern]):
            warnings.append(("no_file_matched", {"pattern": pattern}))
    return warnings


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
