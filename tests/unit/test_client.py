"""The client's serializers: orjson decoding, and encoded bulk bodies sent without a copy."""

from __future__ import annotations

from indexer.client import SERIALIZERS, build_client


class TestSerializers:
    def test_client_uses_them_for_every_json_type(self) -> None:
        """Both the plain and the compatibility-mode media types get the fast serializers."""
        es = build_client(["http://127.0.0.1:1"])
        collection = es.transport.serializers
        for mimetype, serializer in SERIALIZERS.items():
            assert collection.get_serializer(mimetype) is serializer

    def test_responses_decode_like_the_standard_library(self) -> None:
        """A bulk answer decodes to the same structure the stock serializer gives."""
        body = b'{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":409}}]}'
        decoded = SERIALIZERS["application/vnd.elasticsearch+json"].loads(body)
        assert decoded == {"errors": False, "items": [{"create": {"status": 201}},
                                                       {"create": {"status": 409}}]}  # fmt: skip

    def test_encoded_ndjson_is_sent_as_it_is(self) -> None:
        """Bytes that end in a newline are the body itself, not a copy."""
        body = b'{"create":{"_index":"x","_id":"1"}}\n{"a":1}\n'
        assert SERIALIZERS["application/vnd.elasticsearch+x-ndjson"].dumps(body) is body

    def test_other_bodies_are_encoded_as_before(self) -> None:
        """Lists of actions and bytes without the final newline still become valid NDJSON."""
        ndjson = SERIALIZERS["application/x-ndjson"]
        assert ndjson.dumps([{"index": {}}, {"a": 1}]) == b'{"index":{}}\n{"a":1}\n'
        assert ndjson.dumps(b'{"a":1}') == b'{"a":1}\n'
