"""Files: discovery, identity, tailing across rotations, and checkpoints.

The pipeline reads :class:`Line` objects from a :class:`Tailer` and, as Elasticsearch
acknowledges them, moves each file's checkpoint forward in the :class:`Registry`.
"""

from agent.files.identity import FileKey
from agent.files.registry import FilePosition, Registry, RegistryError
from agent.files.tailer import Line, Tailer

__all__ = ["FileKey", "FilePosition", "Line", "Registry", "RegistryError", "Tailer"]
