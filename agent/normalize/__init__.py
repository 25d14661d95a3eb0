"""Normalizing Appmixer audit lines into ECS documents: pure, fast, and never raising.

``Normalizer(options)(line, source)`` returns a :class:`Normalized` event (with its
companion change documents), a :class:`Skipped` service log line or a :class:`Rejected`
line with the reason. No I/O happens here; the tailer and the CLI bring the bytes.

The package runs as plain Python, or compiled with mypyc when installed with
``APPMIXER_AUDIT_COMPILE=1`` (see setup.py and docs/performance.md): same results, faster.
:func:`compiled` tells which build is loaded.
"""

from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES

from agent.normalize.normalizer import Normalizer
from agent.normalize.options import NormalizeOptions
from agent.normalize.result import Normalized, Outcome, Rejected, Skipped, Source

__all__ = [
    "COMPILED_MODULES",
    "NormalizeOptions",
    "Normalized",
    "Normalizer",
    "Outcome",
    "Rejected",
    "Skipped",
    "Source",
    "compiled",
    "is_extension",
]

# The modules the compiled build compiles (setup.py lists the same ones).
COMPILED_MODULES = (
    "aliases",
    "catalog",
    "decode",
    "diff",
    "doc_ids",
    "document",
    "fields",
    "normalizer",
    "patterns",
    "precomputed",
    "redact",
    "related",
    "roles",
    "timestamps",
)


def is_extension(module_name: str) -> bool:
    """Whether the module is loaded from an extension module (compiled) rather than source."""
    path = getattr(import_module(module_name), "__file__", None) or ""
    return path.endswith(tuple(EXTENSION_SUFFIXES))


def compiled() -> bool:
    """Whether the normalizer is the compiled (mypyc) build: its pipeline is compiled code."""
    return is_extension("agent.normalize.normalizer")
