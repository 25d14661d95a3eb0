"""Normalizing Appmixer audit lines into ECS documents: pure, fast, and never raising.

``Normalizer(options)(line, source)`` returns a :class:`Normalized` event (with its
companion change documents), a :class:`Skipped` service log line or a :class:`Rejected`
line with the reason. No I/O happens here; the tailer and the CLI bring the bytes.
"""

from agent.normalize.options import NormalizeOptions
from agent.normalize.pipeline import Normalizer
from agent.normalize.result import Normalized, Outcome, Rejected, Skipped, Source

__all__ = [
    "NormalizeOptions",
    "Normalized",
    "Normalizer",
    "Outcome",
    "Rejected",
    "Skipped",
    "Source",
]
