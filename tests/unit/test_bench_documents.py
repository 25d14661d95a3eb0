"""The benchmark's peer ships the agent's own documents (``bench/documents.py``): for every
line the agent would ship, its event and change documents with the chain fields and
``event.ingested``, in the targets of the namespace asked for, as ``create`` envelopes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import orjson

from agent.config import Settings
from agent.files import FileKey
from agent.normalize import Normalized, NormalizeOptions, Normalizer, Source
from devtools.differential import lines_of, preparer_with
from indexer.bulkbody import bulk_body
from indexer.sink import Doc, Parcel

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "appmixer-audit.sample.ndjson"


def documents_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_documents", ROOT / "bench" / "documents.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_document_of_every_shipped_line(tmp_path: Path) -> None:
    out = tmp_path / "documents.ndjson"
    count = documents_module().write_documents(SAMPLE, "peer", out)
    envelopes = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(envelopes) == count

    # What the normalizer makes of the same lines: the targets to expect, in order.
    settings = Settings(namespace="peer")
    normalizer = Normalizer(NormalizeOptions.from_settings(settings))
    expected: list[str] = []
    for number, raw in enumerate(SAMPLE.read_bytes().splitlines()):
        outcome = normalizer(raw, Source(str(SAMPLE), "f", number, "h"))
        if isinstance(outcome, Normalized):
            expected.append(settings.events_target)
            expected += [settings.changes_target] * len(outcome.changes)
    assert expected, "the sample has shippable lines"
    assert [e["_index"] for e in envelopes] == expected
    assert len({e["_id"] for e in envelopes}) == len(envelopes)

    events = [e["_source"] for e in envelopes if e["_index"] == settings.events_target]
    seqs = [doc["appmixer"]["chain"]["seq"] for doc in events]
    assert seqs == list(range(1, len(events) + 1))  # one stream, chained in read order
    assert all(doc["event"]["ingested"] == "2026-01-01T00:00:00.000Z" for doc in events)
    assert all(doc["data_stream"]["namespace"] == "peer" for doc in events)


def test_the_same_bytes_the_agent_sends(tmp_path: Path) -> None:
    """Each envelope's ``_source`` is byte for byte the document line of the bulk body the
    sink builds for that line, and its ``_index`` and ``_id`` those of its action line."""
    out = tmp_path / "documents.ndjson"
    documents_module().write_documents(SAMPLE, "peer", out, host="h")
    settings = Settings(namespace="peer", host_name="h")
    prepare = preparer_with(NormalizeOptions.from_settings(settings), "h", settings.line_max_bytes)
    pairs: list[tuple[bytes, bytes]] = []
    for line in lines_of(SAMPLE.read_bytes(), FileKey(1, 1, f"{1:016x}"), str(SAMPLE), 1 << 22):
        parcel = prepare(line).outcome
        if isinstance(parcel, Parcel):
            docs = [Doc(settings.events_target, parcel.event_id, parcel.event)]
            docs += [Doc(settings.changes_target, cid, body) for cid, body in parcel.changes]
            body = bulk_body(docs, b'"2026-01-01T00:00:00.000Z"').split(b"\n")
            pairs += zip(body[0::2], body[1::2], strict=False)
    written = out.read_bytes().splitlines()
    assert len(written) == len(pairs)
    for envelope, (action, document) in zip(written, pairs, strict=True):
        head, _, rest = envelope.partition(b',"_source":')
        assert rest[:-1] == document
        meta = orjson.loads(action)["create"]
        assert orjson.loads(head + b"}") == {"_index": meta["_index"], "_id": meta["_id"]}
