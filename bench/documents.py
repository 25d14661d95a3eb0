"""rsyslog's input for "the same documents": what the agent itself sends, line by line.

    python bench/documents.py SOURCE NAMESPACE DOCUMENTS

Every line of SOURCE goes through the reader's own per-line step
(:class:`agent.reader.Preparer`: normalize, chain in read order, encode); each of its
documents is rendered as the sink's bulk body renders it (``EncodedEvent.render``, one fixed
ship time) and written as one envelope line, ``{"_index", "_id", "_source"}``, which the
rsyslog peer parses and ships with ``create`` (``rsyslog_peer``). So both shippers hand the
node the same bytes: the chain fields and ``event.ingested`` included, which
``normalize --with-changes`` (the input before) left out, making the peer's documents a
little cheaper to index than the agent's.

Run under the bench's interpreter (the source build: the compiled one writes the same bytes,
``tests/unit/test_compiled_differential.py``). Nothing here is measured.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import orjson

from agent.config import Settings
from agent.files import FileKey
from agent.normalize import NormalizeOptions, Rejected, Skipped
from devtools.differential import lines_of, preparer_with

SHIP_TIME = b'"2026-01-01T00:00:00.000Z"'


def write_documents(source: Path, namespace: str, out: Path, host: str | None = None) -> int:
    """Write the envelopes of every document the agent sends for ``source``; how many."""
    settings = Settings(namespace=namespace, host_name=host or socket.gethostname())
    line_max = settings.line_max_bytes
    prepare = preparer_with(NormalizeOptions.from_settings(settings), settings.host_name, line_max)
    events, changes = orjson.dumps(settings.events_target), orjson.dumps(settings.changes_target)
    count = 0
    with out.open("wb") as handle:
        key = FileKey(1, 1, f"{1:016x}")
        for line in lines_of(source.read_bytes(), key, str(source.resolve()), line_max):
            parcel = prepare(line).outcome
            if isinstance(parcel, Skipped | Rejected):
                continue
            docs = [(events, parcel.event_id, parcel.event)]
            docs += [(changes, change_id, body) for change_id, body in parcel.changes]
            for target, doc_id, body in docs:  # each as the sink renders it (bulkbody)
                handle.write(
                    b'{"_index":%s,"_id":%s,"_source":%s}\n'
                    % (target, orjson.dumps(doc_id), body.render(SHIP_TIME))
                )
            count += len(docs)
    return count


if __name__ == "__main__":
    print(write_documents(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
