"""Building search requests and shaping their answers, without a node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cli.search import format_table
from indexer.fields import KEYWORD_TYPES, TEXT_TYPES, field
from indexer.search import (
    FULL_TEXT_FIELDS,
    SORT,
    Filters,
    build_query,
    build_search,
    changes_search,
    decode_cursor,
    detail_rows,
    diff_rows,
    encode_cursor,
    event_query,
    event_row,
    get_path,
    parse_time,
    shape_page,
    stored_document,
    word_query,
    words,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


class TestParseTime:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("15m", NOW - timedelta(minutes=15)),
            ("7d", NOW - timedelta(days=7)),
            ("2w", NOW - timedelta(weeks=2)),
            ("36h", NOW - timedelta(hours=36)),
            ("90s", NOW - timedelta(seconds=90)),
            ("now", NOW),
            ("2026-11-25T09:00:00Z", datetime(2026, 11, 25, 9, tzinfo=UTC)),
            ("2026-11-25T10:00:00+01:00", datetime(2026, 11, 25, 9, tzinfo=UTC)),
            ("2026-11-25T09:00:00", datetime(2026, 11, 25, 9, tzinfo=UTC)),
            ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
        ],
    )
    def test_accepted_forms(self, text: str, expected: datetime) -> None:
        """Ages count back from now; ISO times become UTC, a zone-less one is taken as UTC."""
        assert parse_time(text, now=NOW) == expected

    @pytest.mark.parametrize("text", ["yesterday", "7 days", "7y", "", "2026-13-01"])
    def test_refused_forms(self, text: str) -> None:
        """Anything else is refused, naming the accepted forms."""
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_time(text, now=NOW)


class TestWords:
    def test_quotes_make_a_phrase(self) -> None:
        """Words split on blanks; a double-quoted part stays one phrase."""
        assert words('flow "leads sync"  maria') == ["flow", "leads sync", "maria"]

    def test_unbalanced_quote_is_not_an_error(self) -> None:
        """A stray quote is ignored rather than refused."""
        assert words('flow "updated') == ["flow", "updated"]


class TestWordQuery:
    def test_each_field_is_queried_as_its_type_allows(self) -> None:
        """Text fields match words; keyword fields match the whole value, any case."""
        query = word_query("Maria")
        should = query["bool"]["should"]
        assert query["bool"]["minimum_should_match"] == 1
        multi = should[0]["multi_match"]
        terms = {next(iter(c["term"])) for c in should[1:]}
        for name in FULL_TEXT_FIELDS:
            spec = field("events", name)
            if spec.type in TEXT_TYPES:
                assert name in multi["fields"]
            else:
                assert spec.type in KEYWORD_TYPES
                assert name in terms
                sub = spec.subfield(TEXT_TYPES)
                assert sub is None or sub in multi["fields"]
        assert multi["type"] == "phrase"
        assert all(c["term"][next(iter(c["term"]))]["case_insensitive"] for c in should[1:])

    def test_ids_are_whole_values_not_fragments(self) -> None:
        """A flow id goes to term queries unchanged, never through an analyser that splits it."""
        flow = "9c4673d7-a550-45a2-91c1-ad057fac0385"
        should = word_query(flow)["bool"]["should"]
        assert {"term": {"appmixer.flow.id": {"value": flow, "case_insensitive": True}}} in should
        assert "appmixer.flow.id" not in should[0]["multi_match"]["fields"]


class TestBuildQuery:
    def test_no_filter_matches_everything(self) -> None:
        """The seed's RESET: no filters is match_all."""
        assert build_query(Filters()) == {"match_all": {}}

    def test_every_filter_is_a_required_clause(self) -> None:
        """Each given filter is one filter clause; all must hold."""
        filters = Filters(
            query="flow updated",
            since=datetime(2026, 11, 25, 9, tzinfo=UTC),
            until=datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
            types=("update", "create", "update"),
            user=" Maria@Acme.example ",
            flow_id="f-1",
        )
        clauses = build_query(filters)["bool"]["filter"]
        assert clauses[0] == word_query("flow")
        assert clauses[1] == word_query("updated")
        assert clauses[2] == {
            "range": {
                "@timestamp": {"gte": "2026-11-25T09:00:00.000Z", "lte": "2026-11-25T10:30:00.000Z"}
            }
        }
        assert clauses[3] == {"terms": {"appmixer.audit.type": ["create", "update"]}}
        assert clauses[4] == {
            "bool": {
                "should": [
                    {
                        "term": {
                            "user.email": {"value": "Maria@Acme.example", "case_insensitive": True}
                        }
                    },
                    {"term": {"user.id": "Maria@Acme.example"}},
                ],
                "minimum_should_match": 1,
            }
        }
        assert clauses[5] == {"term": {"appmixer.flow.id": "f-1"}}
        assert len(clauses) == 6

    def test_only_since(self) -> None:
        """One bound alone gives a one-sided range."""
        query = build_query(Filters(since=datetime(2026, 1, 1, tzinfo=UTC)))
        assert query == {
            "bool": {"filter": [{"range": {"@timestamp": {"gte": "2026-01-01T00:00:00.000Z"}}}]}
        }

    def test_filter_fields_are_mapped(self) -> None:
        """Every field a filter or the sort uses is mapped as a keyword or date."""
        for name in (
            "appmixer.audit.type",
            "user.email",
            "user.id",
            "appmixer.flow.id",
            "event.id",
        ):
            assert field("events", name).type in KEYWORD_TYPES
        assert field("events", "@timestamp").type == "date"
        assert field("changes", "appmixer.change.index").type == "integer"


class TestBuildSearch:
    def test_newest_first_with_one_extra_hit(self) -> None:
        """Sorted by time then id, descending; one more hit than shown reveals a next page."""
        body = build_search(Filters(), size=20)
        assert (
            body["sort"]
            == SORT
            == [
                {"@timestamp": {"order": "desc"}},
                {"event.id": {"order": "desc"}},
            ]
        )
        assert body["size"] == 21
        assert "search_after" not in body

    def test_after_continues_from_sort_values(self) -> None:
        """A cursor's values become search_after."""
        body = build_search(Filters(), size=5, after=[1764062476000, "e9"])
        assert body["search_after"] == [1764062476000, "e9"]

    @pytest.mark.parametrize("size", [0, 10_000])
    def test_size_bounds(self, size: int) -> None:
        """A page holds 1 to 9999 events (the node's result window, minus the probe hit)."""
        with pytest.raises(ValueError, match="size"):
            build_search(Filters(), size=size)


class TestCursor:
    def test_round_trip(self) -> None:
        """A cursor decodes to the sort values it was made from and is shell-safe."""
        cursor = encode_cursor([1764062476000, "6745a1f0c1d2e3f405060703"])
        assert cursor.isascii()
        assert all(ch.isalnum() or ch in "-_" for ch in cursor)
        assert decode_cursor(cursor) == [1764062476000, "6745a1f0c1d2e3f405060703"]

    @pytest.mark.parametrize("cursor", ["not a cursor!", encode_cursor([1]), "e30"])
    def test_foreign_cursor_refused(self, cursor: str) -> None:
        """Text that is not one of our cursors is refused with a clear message."""
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor(cursor)


def hit(event_id: str, when: str, **source: Any) -> dict[str, Any]:
    body = {"@timestamp": when, "event": {"action": "flow.updated"}, **source}
    return {"_id": event_id, "_source": body, "sort": [1, event_id]}


class TestShaping:
    def test_page_cursor_only_when_more(self) -> None:
        """With one hit beyond the size there is a cursor from the last shown hit."""
        hits = [hit(f"e{i}", "2026-11-25T09:00:00Z") for i in range(3)]
        page = shape_page({"hits": {"hits": hits}}, size=2)
        assert [d["event"]["id"] for d in page.documents] == ["e0", "e1"]
        assert page.cursor is not None
        assert decode_cursor(page.cursor) == [1, "e1"]
        assert shape_page({"hits": {"hits": hits}}, size=3).cursor is None

    def test_stored_document_gets_its_id(self) -> None:
        """The document is returned as stored, with _id as event.id."""
        doc = stored_document(hit("e1", "2026-11-25T09:00:00Z", message="Flow Updated"))
        assert doc == {
            "@timestamp": "2026-11-25T09:00:00Z",
            "event": {"action": "flow.updated", "id": "e1"},
            "message": "Flow Updated",
        }

    def test_get_path_reads_nested_and_dotted(self) -> None:
        """Values are found whether stored nested or under a dotted key."""
        assert get_path({"user": {"email": "a@b"}}, "user.email") == "a@b"
        assert get_path({"user.email": "a@b"}, "user.email") == "a@b"
        assert get_path({"user": "x"}, "user.email") is None

    def test_event_row(self) -> None:
        """Action, user email (else name, else id), time in UTC, event id."""
        doc = stored_document(
            hit("e1", "2026-11-25T10:02:00+01:00", message="User Logged In", user={"id": "u1"})
        )
        assert event_row(doc) == ("User Logged In", "u1", "2026-11-25T09:02:00.000Z", "e1")

    def test_detail_rows_leave_out_absent_fields(self) -> None:
        """Details list what the event has, combining related fields on one line."""
        doc = {
            "@timestamp": "2026-11-25T09:00:00Z",
            "event": {"id": "e1", "action": "user.login_failed", "outcome": "failure"}
            | {"reason": "invalid password"},
            "message": "Login Failed",
            "user": {"email": "ops@acme.example"},
            "appmixer": {"audit": {"type": "access", "catalog": False}},
        }
        assert detail_rows(doc) == [
            ("Event ID", "e1"),
            ("Action", "Login Failed (user.login_failed)"),
            ("Type", "access"),
            ("Outcome", "failure (invalid password)"),
            ("Created (UTC)", "2026-11-25T09:00:00.000Z"),
            ("User", "ops@acme.example"),
            ("In catalog", "False"),
        ]

    def test_diff_rows_keep_order_and_blanks(self) -> None:
        """Rows follow the given order; a missing old or new value is blank."""
        changes = [
            {"appmixer": {"change": {"index": 0, "path": "/a", "op": "add", "new": "1"}}},
            {"appmixer": {"change": {"index": 1, "path": "/b", "op": "remove", "old": "x"}}},
        ]
        assert diff_rows(changes) == [("/a", "add", "", "1"), ("/b", "remove", "x", "")]

    def test_change_and_event_lookups(self) -> None:
        """Changes are fetched by event id in diff order; an event by _id or event.id."""
        body = changes_search("e1", size=100, after=99)
        assert body["query"] == {"bool": {"filter": [{"term": {"event.id": "e1"}}]}}
        assert body["sort"] == [{"appmixer.change.index": {"order": "asc"}}]
        assert body["search_after"] == [99]
        should = event_query("e1")["bool"]["should"]
        assert {"ids": {"values": ["e1"]}} in should
        assert {"term": {"event.id": "e1"}} in should


class TestTable:
    def test_columns_align_and_cells_are_one_line(self) -> None:
        """Columns are as wide as their widest cell; newlines are shown escaped."""
        lines = format_table(("A", "Bee"), [("x", "1"), ("long\nvalue", "22")])
        assert lines == ["A            Bee", "x            1", "long\\nvalue  22"]

    def test_long_cells_are_cut(self) -> None:
        """A cell beyond 80 characters ends in an ellipsis."""
        (_header, row) = format_table(("A",), [("y" * 200,)])
        assert len(row) == 80
        assert row.endswith("…")
