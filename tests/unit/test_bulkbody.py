"""Bulk bodies: each document encoded once, the ship time spliced into the joined request."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import orjson

from indexer.bulkbody import EncodedEvent, bulk_body

INGESTED = orjson.dumps("2026-11-27T10:00:00.000Z")


@dataclass
class Doc:
    target: str
    doc_id: str
    body: EncodedEvent


def lines(body: bytes) -> list[dict[str, object]]:
    assert body.endswith(b"\n")
    return [orjson.loads(line) for line in body.splitlines()]


class TestEncodedEvent:
    def test_render_sets_ingested_and_keeps_everything_else(self) -> None:
        """The rendered document is the input plus event.ingested, nothing lost or moved."""
        document = {"@timestamp": "2026-01-01T00:00:00Z", "event": {"id": "e1", "kind": "event"},
                    "message": "Flow Updated", "user": {"email": "a@b.example"}}  # fmt: skip
        rendered = orjson.loads(EncodedEvent(document).render(INGESTED))
        expected = {**document, "event": {"id": "e1", "kind": "event",
                                          "ingested": "2026-11-27T10:00:00.000Z"}}  # fmt: skip
        assert rendered == expected

    def test_a_document_without_event_gets_one(self) -> None:
        """Change documents without an event object still carry the ship time."""
        rendered = orjson.loads(EncodedEvent({"change": {"path": "/a"}}).render(INGESTED))
        assert rendered == {
            "change": {"path": "/a"},
            "event": {"ingested": "2026-11-27T10:00:00.000Z"},
        }

    def test_an_ingested_in_the_input_is_replaced_and_the_input_untouched(self) -> None:
        """A stale ingested value never survives, and the caller's dicts are not modified."""
        document = {"event": {"ingested": "old", "id": "x"}}
        encoded = EncodedEvent(document)
        assert document == {"event": {"ingested": "old", "id": "x"}}
        assert orjson.loads(encoded.render(INGESTED))["event"]["ingested"] != "old"

    def test_length_is_the_encoded_size(self) -> None:
        """The buffer's byte accounting uses the real encoded size."""
        encoded = EncodedEvent({"message": "x" * 1000})
        assert len(encoded) == len(encoded.data) > 1000

    def test_encoded_documents_hold_no_more_memory_than_their_size(self) -> None:
        """Buffered documents are right-sized copies, not orjson's larger working buffers."""
        document = {"message": "x" * 2000, "event": {"id": "e"}}
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [EncodedEvent(document) for _ in range(200)]
            held = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
        finally:
            tracemalloc.stop()
        assert held < 2 * len(kept[0])


class TestBulkBody:
    def test_actions_and_documents_alternate_with_the_ship_time(self) -> None:
        """Each document gets a create action with its target and id, then itself."""
        docs = [Doc("logs-a", "id1", EncodedEvent({"event": {"id": "id1"}})),
                Doc("logs-b", "id1-0", EncodedEvent({"change": {"op": "add"}}))]  # fmt: skip
        parsed = lines(bulk_body(docs, INGESTED))
        assert parsed == [
            {"create": {"_index": "logs-a", "_id": "id1"}},
            {"event": {"id": "id1", "ingested": "2026-11-27T10:00:00.000Z"}},
            {"create": {"_index": "logs-b", "_id": "id1-0"}},
            {"change": {"op": "add"}, "event": {"ingested": "2026-11-27T10:00:00.000Z"}},
        ]

    def test_ids_and_content_are_escaped(self) -> None:
        """An id from the input with quotes or backslashes cannot break the NDJSON."""
        odd = 'a"b\\c\n'
        docs = [Doc("logs-a", odd, EncodedEvent({"message": 'say "hi"\n', "event": {}}))]
        parsed = lines(bulk_body(docs, INGESTED))
        assert parsed[0] == {"create": {"_index": "logs-a", "_id": odd}}
        assert parsed[1]["message"] == 'say "hi"\n'

    def test_text_like_the_placeholder_in_content_is_left_alone(self) -> None:
        """Only the field the encoder wrote changes: look-alike text in the input stays."""
        lookalike = "\x01ingested-0123456789abcdef01234567"
        docs = [Doc("t", "1", EncodedEvent({"message": lookalike}))]
        assert lines(bulk_body(docs, INGESTED))[1]["message"] == lookalike

    def test_an_empty_request_is_empty(self) -> None:
        """No documents, no bytes."""
        assert bulk_body([], INGESTED) == b""
