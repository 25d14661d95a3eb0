"""Where in the data path a line was refused: one type, set where the refusal is made.

The normalizer sets ``DECODE`` or ``NORMALIZE`` on its rejections, the bulk sink's refusals
are ``INDEX`` by construction, and the dead-letter file records the stage it is given:
nothing infers a stage from the wording of a message.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where in the data path the line was refused."""

    DECODE = "decode"  # not UTF-8, not JSON, not a JSON object
    NORMALIZE = "normalize"  # an audit record the normalizer cannot use
    INDEX = "index"  # Elasticsearch refused the document for its content
