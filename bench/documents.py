"""rsyslog's input for "the same documents": what the agent itself sends, line by line.

    python bench/documents.py SOURCE NAMESPACE DOCUMENTS

Every line of SOURCE goes through the reader's own per-line step
(:class:`agent.reader.Preparer`: normalize, chain in read order, encode) and into a bulk
body as the sink builds it (``indexer.bulkbody``), with one fixed ship time; each document
of that body is written as one envelope line, ``{"_index", "_id", "_source"}``, which the
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
from agent.evidence.chains import Chains
from agent.files import FileKey
from agent.normalize import NormalizeOptions, Normalizer, Rejected, Skipped
from agent.reader import Preparer
from devtools.differential import lines_of
from indexer.bulkbody import bulk_body
from indexer.sink import Doc

SHIP_TIME = b'"2026-01-01T00:00:00.000Z"'


def write_documents(source: Path, namespace: str, out: Path, host: str | None = None) -> int:
    """Write the envelopes of every document the agent sends for ``source``; how many."""
    settings = Settings(namespace=namespace, host_name=host or socket.gethostname())
    host = settings.host_name
    prepare = Preparer(
        Normalizer(NormalizeOptions.from_settings(settings)),
        Chains(host, lambda *_: None),
        host_name=host,
        line_max=settings.line_max_bytes,
    )
    key = FileKey(1, 1, f"{1:016x}")
    path = str(source.resolve())
    count = 0
    with out.open("wb") as handle:
        for line in lines_of(source.read_bytes(), key, path, settings.line_max_bytes):
            parcel = prepare(line).outcome
            if isinstance(parcel, Skipped | Rejected):
                continue
            docs = [Doc(settings.events_target, parcel.event_id, parcel.event)]
            docs += [Doc(settings.changes_target, cid, body) for cid, body in parcel.changes]
            body = bulk_body(docs, SHIP_TIME).split(b"\n")
            for action, document in zip(body[0::2], body[1::2], strict=False):
                meta = orjson.loads(action)["create"]
                handle.write(
                    b'{"_index":%s,"_id":%s,"_source":%s}\n'
                    % (orjson.dumps(meta["_index"]), orjson.dumps(meta["_id"]), document)
                )
                count += 1
    return count


if __name__ == "__main__":
    print(write_documents(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
