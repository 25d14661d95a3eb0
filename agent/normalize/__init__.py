"""Normalizing Appmixer audit lines into ECS documents: pure, fast, and never raising.

``Normalizer(options)(line, source)`` returns a :class:`Normalized` event (with its
companion change documents), a :class:`Skipped` service log line or a :class:`Rejected`
line with the reason. No I/O happens here; the tailer and the CLI bring the bytes.

The package runs as plain Python, or compiled with mypyc as part of the per-line path
(:mod:`agent.build`, setup.py, docs/performance.md): same results, faster. :func:`compiled`
tells which build is loaded.
"""

from agent.build import is_extension
from agent.normalize.normalizer import Normalizer
from agent.normalize.options import NormalizeOptions
from agent.normalize.result import Normalized, Outcome, Rejected, Skipped, Source

__all__ = [
    "NormalizeOptions",
    "Normalized",
    "Normalizer",
    "Outcome",
    "Rejected",
    "Skipped",
    "Source",
    "compiled",
]


def compiled() -> bool:
    """Whether the normalizer is the compiled (mypyc) build: its pipeline is compiled code."""
    return is_extension("agent.normalize.normalizer")
