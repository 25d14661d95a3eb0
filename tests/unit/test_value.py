"""The per-line value classes' base: equality, repr and hashing as the dataclasses had them."""

from __future__ import annotations

import pytest

from agent.evidence.chains import Place
from agent.files import Line
from agent.files.identity import FileKey
from agent.items import Item
from agent.normalize.result import Normalized, Skipped, Source
from chain.link import GENESIS, Head
from indexer.bulkbody import Parcel

LINE = Line(FileKey(1, 2, "0" * 32), "/logs/a.log", 0, 3, b"{}", generation=4)


def test_equal_by_class_and_fields() -> None:
    head = Head("s", 1, GENESIS, "e1")
    assert head == Head("s", 1, GENESIS, "e1")
    assert head != Head("s", 2, GENESIS, "e1")
    assert head != Head("s", 1, GENESIS)
    assert Place(head) == Place(Head("s", 1, GENESIS, "e1"), None)
    assert Place(head, "p") != Place(head)
    assert head != ("s", 1, GENESIS, "e1")
    assert Place(head) != Item(LINE, Skipped("x"), Place(head))


def test_unhashable_like_a_mutable_dataclass() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(Head.genesis("s"))
    with pytest.raises(TypeError, match="unhashable"):
        hash(Place(Head.genesis("s")))


def test_repr_names_each_field_in_order() -> None:
    text = repr(Place(Head("s", 0, GENESIS), "p"))
    assert text == f"Place(head=Head(stream='s', seq=0, hash='{GENESIS}', event_id=None), prev='p')"


def test_no_per_object_dict() -> None:
    assert not hasattr(LINE, "__dict__")
    assert LINE.values() == (FileKey(1, 2, "0" * 32), "/logs/a.log", 0, 3, b"{}", 0, 4)


def test_every_field_is_a_slot_and_a_field() -> None:
    """``FIELDS`` and ``__slots__`` list the same names (the source build reads both)."""
    for cls in (Head, Place, Item, Parcel, Line, Source, Normalized):
        slots = getattr(cls, "__slots__", None)
        if slots is None:  # the compiled build keeps no __slots__ in the class namespace
            continue
        assert sorted(slots) == sorted(cls.FIELDS), cls.__name__
