"""Files: discovery, identity, tailing across rotations, and checkpoints.

The pipeline reads :class:`Line` objects, and facts about the files (:mod:`agent.files.facts`)
in order with them, from a :class:`Tailer`. The tailer only reads the :class:`Registry`; the
checkpointer (``agent.acks``) is its one writer: it applies the facts and, as Elasticsearch
acknowledges lines, moves each file's checkpoint forward.
"""

from agent.files.facts import Copied, Fact, Gone, Moved, Opened, Reset
from agent.files.identity import FileKey
from agent.files.registry import FilePosition, Registry, RegistryError
from agent.files.tailer import Line, Positions, Tailer

__all__ = [
    "Copied",
    "Fact",
    "FileKey",
    "FilePosition",
    "Gone",
    "Line",
    "Moved",
    "Opened",
    "Positions",
    "Registry",
    "RegistryError",
    "Reset",
    "Tailer",
]
