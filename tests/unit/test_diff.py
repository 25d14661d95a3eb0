"""The diff engine and precomputed diffs: JSON Pointer changes that replay as a patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.normalize.diff import MISSING, Change, Differ, deep_equal, escape, unescape
from agent.normalize.precomputed import from_precomputed, pointer


def _never_secret(_key: str) -> bool:
    return False


def _differ(max_depth: int = 32, max_changes: int = 500) -> Differ:
    return Differ(max_depth, max_changes, _never_secret)


def _rows(changes: list[Change]) -> list[tuple[str, str, Any, Any]]:
    return [(change.path, change.op, change.old, change.new) for change in changes]


def apply(document: Any, changes: list[Change]) -> Any:
    """Replay changes in order as an RFC 6902 patch (``add`` on an array inserts)."""
    root = {"": copy.deepcopy(document)}
    for change in changes:
        tokens = [unescape(token) for token in change.path.split("/")[1:]] if change.path else []
        parent: Any = root
        name: Any = ""
        for token in tokens:
            parent = parent[name]
            name = int(token) if isinstance(parent, list) else token
        if change.op == "remove":
            del parent[name]
        elif change.op == "add" and isinstance(parent, list):
            parent.insert(name, copy.deepcopy(change.new))
        else:
            parent[name] = copy.deepcopy(change.new)
    return root[""]


def _nest(levels: int, leaf: Any) -> Any:
    value = leaf
    for index in range(levels):
        value = {"n": value} if index % 2 else [value]
    return value


class TestPointers:
    def test_escape_round_trip(self) -> None:
        """``~`` becomes ``~0`` and ``/`` becomes ``~1``, and back."""
        assert escape("a/b~c") == "a~1b~0c"
        assert unescape("a~1b~0c") == "a/b~c"
        assert unescape(escape("~1")) == "~1"

    def test_paths_use_escaped_keys(self) -> None:
        """Keys holding ``/`` or ``~`` appear escaped in the path."""
        diff = _differ().diff({"a/b": 1, "c~d": 1}, {"a/b": 2, "c~d": 2})
        assert [change.path for change in diff.changes] == ["/a~1b", "/c~0d"]


class TestDiffer:
    def test_add_remove_replace(self) -> None:
        """A changed key is a replace, a new key an add, a vanished key a remove."""
        diff = _differ().diff({"a": 1, "b": 2}, {"a": 3, "c": 4})
        assert _rows(diff.changes) == [
            ("/a", "replace", 1, 3),
            ("/b", "remove", 2, MISSING),
            ("/c", "add", MISSING, 4),
        ]
        assert (diff.count, diff.truncated) == (3, False)

    def test_equal_states_have_no_changes(self) -> None:
        """Equal states, however nested, give an empty diff."""
        state = {"a": [1, {"b": [True, None, "x"]}]}
        assert _differ().diff(state, copy.deepcopy(state)).changes == []

    def test_type_change_is_replace(self) -> None:
        """A value changing JSON type is one replace, even true to 1 or an object to a list."""
        diff = _differ().diff({"a": True, "b": {"x": 1}, "c": 1}, {"a": 1, "b": [1], "c": 1.0})
        assert _rows(diff.changes) == [("/a", "replace", True, 1), ("/b", "replace", {"x": 1}, [1])]

    def test_nested_paths(self) -> None:
        """Changes deep in a state carry the full pointer."""
        before = {"flow": {"a1": {"config": {"interval": 15}}}}
        after = {"flow": {"a1": {"config": {"interval": 5}}}}
        assert _rows(_differ().diff(before, after).changes) == [
            ("/flow/a1/config/interval", "replace", 15, 5)
        ]

    def test_arrays_by_index(self) -> None:
        """Arrays without ids compare by position: changes, then appends or trailing removes."""
        assert _rows(_differ().diff([1, 2, 3], [1, 5, 3, 4]).changes) == [
            ("/1", "replace", 2, 5),
            ("/3", "add", MISSING, 4),
        ]
        assert _rows(_differ().diff([1, 2, 3, 4], [1, 2]).changes) == [
            ("/3", "remove", 4, MISSING),
            ("/2", "remove", 3, MISSING),
        ]

    def test_arrays_by_id(self) -> None:
        """Elements carrying ids are matched by id: removals by old index, the rest by new."""
        before = [{"id": "a", "v": 1}, {"id": "b", "v": 1}, {"id": "c", "v": 1}]
        after = [{"id": "x", "v": 0}, {"id": "a", "v": 1}, {"id": "c", "v": 2}]
        diff = _differ().diff({"rules": before}, {"rules": after})
        assert _rows(diff.changes) == [
            ("/rules/1", "remove", before[1], MISSING),
            ("/rules/0", "add", MISSING, after[0]),
            ("/rules/2/v", "replace", 1, 2),
        ]
        assert apply({"rules": before}, diff.changes) == {"rules": after}

    def test_reordered_ids_fall_back_to_index(self) -> None:
        """When common elements change order, matching by id is dropped for positions."""
        before = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
        after = [{"id": 2, "v": "b"}, {"id": 1, "v": "a"}]
        diff = _differ().diff(before, after)
        assert [change.path for change in diff.changes] == ["/0/id", "/0/v", "/1/id", "/1/v"]
        assert apply(before, diff.changes) == after

    def test_create_and_delete(self) -> None:
        """A missing before adds each key of after; a missing after removes each key."""
        assert _rows(_differ().diff(MISSING, {"a": 1}).changes) == [("/a", "add", MISSING, 1)]
        assert _rows(_differ().diff({"a": 1}, MISSING).changes) == [("/a", "remove", 1, MISSING)]
        assert _rows(_differ().diff(MISSING, [1]).changes) == [("", "add", MISSING, [1])]
        assert _differ().diff(MISSING, MISSING).changes == []

    def test_scalar_states(self) -> None:
        """Scalar states differ as one replace at the root."""
        assert _rows(_differ().diff("a", "b").changes) == [("", "replace", "a", "b")]

    def test_secret_flag(self) -> None:
        """Changes at or below a secret-looking key are flagged for redaction."""
        differ = Differ(32, 500, lambda key: key == "auth")
        diff = differ.diff({"auth": {"x": 1}, "y": 1}, {"auth": {"x": 2}, "y": 2})
        assert [(change.path, change.secret) for change in diff.changes] == [
            ("/auth/x", True),
            ("/y", False),
        ]

    def test_bad_depth_is_refused(self) -> None:
        """A depth cap outside 1-256 is a configuration error."""
        with pytest.raises(ValueError, match="diff_max_depth"):
            Differ(0, 10, _never_secret)
        with pytest.raises(ValueError, match="diff_max_depth"):
            Differ(257, 10, _never_secret)


class TestCaps:
    def test_change_cap(self) -> None:
        """Only max_changes are kept; the count still says how many there were."""
        diff = _differ(max_changes=3).diff({}, {str(i): i for i in range(10)})
        assert len(diff.changes) == 3
        assert (diff.count, diff.truncated) == (10, True)

    def test_depth_cap(self) -> None:
        """A subtree at the depth cap is compared whole and reported as one replace."""
        before, after = _nest(10, 1), _nest(10, 2)
        diff = _differ(max_depth=3).diff(before, after)
        assert len(diff.changes) == 1
        assert diff.changes[0].path.count("/") == 3
        assert diff.truncated is True

    def test_depth_cap_without_difference(self) -> None:
        """Equal subtrees at the cap produce nothing and do not mark the diff truncated."""
        diff = _differ(max_depth=2).diff({"a": _nest(9, 1)}, {"a": _nest(9, 1), "b": 1})
        assert _rows(diff.changes) == [("/b", "add", MISSING, 1)]
        assert diff.truncated is False

    @pytest.mark.parametrize("levels", [300, 1000])
    def test_very_deep_states(self, levels: int) -> None:
        """A 300- or 1000-level document neither raises nor recurses past the cap."""
        diff = _differ(max_depth=256).diff(_nest(levels, 1), _nest(levels, 2))
        assert diff.count == 1
        assert diff.truncated is True

    def test_deep_equal_is_iterative_and_strict(self) -> None:
        """Deep equality copes with any depth and tells true from 1."""
        assert deep_equal(_nest(5000, 1), _nest(5000, 1))
        assert not deep_equal(_nest(5000, True), _nest(5000, 1))
        assert not deep_equal({"a": 1}, {"b": 1})


class TestPrecomputed:
    def test_old_new_list(self) -> None:
        """A list of {path, old, new} keeps its paths; the op follows from what is given."""
        diff = from_precomputed(
            [
                {"path": "/rules/3/role", "old": "user", "new": "admin"},
                {"path": "/a", "new": 1},
                {"path": "/b", "old": 2},
            ],
            500,
            _never_secret,
        )
        assert _rows(diff.changes) == [
            ("/rules/3/role", "replace", "user", "admin"),
            ("/a", "add", MISSING, 1),
            ("/b", "remove", 2, MISSING),
        ]

    def test_rfc6902_patch(self) -> None:
        """RFC 6902 ops map onto ours: move is a remove and an add, test is dropped."""
        diff = from_precomputed(
            [
                {"op": "add", "path": "/a", "value": 1},
                {"op": "replace", "path": "/b", "value": 2},
                {"op": "remove", "path": "/c"},
                {"op": "move", "from": "/d", "path": "/e"},
                {"op": "copy", "from": "/f", "path": "/g"},
                {"op": "test", "path": "/h", "value": 3},
            ],
            500,
            _never_secret,
        )
        assert [(change.path, change.op) for change in diff.changes] == [
            ("/a", "add"),
            ("/b", "replace"),
            ("/c", "remove"),
            ("/d", "remove"),
            ("/e", "add"),
            ("/g", "add"),
        ]

    def test_path_forms(self) -> None:
        """Dotted paths and segment lists become JSON Pointers; unusable entries are left out."""
        assert pointer("rules.3.role") == "/rules/3/role"
        assert pointer(["a/b", 0]) == "/a~1b/0"
        assert pointer("") == ""
        assert pointer(None) is None
        assert pointer([True]) is None
        diff = from_precomputed([{"old": 1}, "junk", {"path": 5}], 500, _never_secret)
        assert diff.changes == []

    def test_mapping_form(self) -> None:
        """An object of path -> {old, new} is accepted too."""
        diff = from_precomputed({"name": {"old": "a", "new": "b"}}, 500, _never_secret)
        assert _rows(diff.changes) == [("/name", "replace", "a", "b")]

    def test_caps_and_secrets(self) -> None:
        """Precomputed diffs are capped like computed ones and flag secret paths."""
        entries = [{"path": f"/auth/password{i}", "old": i, "new": i + 1} for i in range(5)]
        diff = from_precomputed(entries, 2, lambda key: key.startswith("password"))
        assert (len(diff.changes), diff.count, diff.truncated) == (2, 5, True)
        assert all(change.secret for change in diff.changes)


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c/d", "e~f", "id"]), children, max_size=4)
    ),
    max_leaves=20,
)
with_ids = st.lists(
    st.fixed_dictionaries({"id": st.integers(0, 6), "v": json_scalars}), max_size=5
).map(lambda items: list({item["id"]: item for item in items}.values()))


class TestDiffProperties:
    @settings(max_examples=300, deadline=None)
    @given(json_values, json_values)
    def test_patch_replays(self, before: Any, after: Any) -> None:
        """Applying the changes to before, in order, gives after (no cap hit)."""
        diff = _differ().diff(before, after)
        assert not diff.truncated
        assert deep_equal(apply(before, diff.changes), after)

    @settings(max_examples=300, deadline=None)
    @given(with_ids, with_ids)
    def test_patch_replays_with_ids(self, before: list[Any], after: list[Any]) -> None:
        """Arrays matched by id replay too."""
        diff = _differ().diff({"items": before}, {"items": after})
        assert deep_equal(apply({"items": before}, diff.changes), {"items": after})

    @settings(max_examples=100, deadline=None)
    @given(json_values, json_values)
    def test_count_is_exact_under_the_change_cap(self, before: Any, after: Any) -> None:
        """With a tiny change cap, the count still equals the uncapped number of changes."""
        full = _differ().diff(before, after)
        capped = _differ(max_changes=1).diff(before, after)
        assert capped.count == full.count
        assert capped.changes == full.changes[:1]
        assert capped.truncated == (full.count > 1)


class TestEqualSubtrees:
    def test_same_values_in_another_key_order(self) -> None:
        """Objects equal but for key order hold no change."""
        before = {"a": {"x": 1, "y": [1, {"p": None, "q": "s"}]}, "b": 2}
        after = {"b": 2, "a": {"y": [1, {"q": "s", "p": None}], "x": 1}}
        assert _differ().diff(before, after).changes == []

    @pytest.mark.parametrize(("old", "new"), [(True, 1), (False, 0), (None, False)])
    def test_equal_but_other_type_deep_inside(self, old: Any, new: Any) -> None:
        """Python calls true and 1 equal, JSON does not: the change is found at its path."""
        before = {"a": {"b": [{"c": old}]}, "d": "x"}
        after = {"a": {"b": [{"c": new}]}, "d": "x"}
        assert _rows(_differ().diff(before, after).changes) == [("/a/b/0/c", "replace", old, new)]

    def test_numbers_are_one_json_type(self) -> None:
        """1 and 1.0 are the same JSON number, however deep: no change."""
        assert (
            _differ().diff({"a": [{"c": 1}], "b": 0}, {"a": [{"c": 1.0}], "b": 0.0}).changes == []
        )

    def test_secret_flag_only_on_the_changed_key(self) -> None:
        """Keys of unchanged values are not looked at; changed ones are flagged as before."""
        asked: list[str] = []

        def secret(key: str) -> bool:
            asked.append(key)
            return key == "token"

        differ = Differ(32, 500, secret)
        diff = differ.diff(
            {"name": "a", "token": "t1", "n": {"m": 1}}, {"name": "a", "token": "t2", "n": {"m": 1}}
        )
        assert [(change.path, change.secret) for change in diff.changes] == [("/token", True)]
        assert "token" in asked
