"""What the reader hands the settler through the buffer: lines with their fate, and facts.

The reader normalizes and encodes each line on its own thread and buffers an :class:`Item`;
the tailer's facts about files (:mod:`agent.files.facts`) travel in the same buffer, in
order, so the settler applies them exactly between the lines they came between.
"""

from __future__ import annotations

from typing import ClassVar

from agent.evidence.chains import Place
from agent.files import Fact, Line
from agent.normalize import Rejected, Skipped
from common.value import Value
from indexer.bulkbody import Parcel


class Item(Value):
    """A line and what it became; events are encoded (bytes are compact, dicts are not).

    A value, not frozen for speed (see :class:`chain.link.Head`); ``chain`` is its place in
    its stream's hash chain.
    """

    __slots__ = ("chain", "line", "outcome")
    FIELDS: ClassVar[tuple[str, ...]] = ("line", "outcome", "chain")

    def __init__(self, line: Line, outcome: Parcel | Skipped | Rejected, chain: Place) -> None:
        self.line = line
        self.outcome = outcome
        self.chain = chain


Entry = Item | Fact
