"""Which lines get the replay check: the window of the previous run, and copies."""

from __future__ import annotations

from agent.acks import ReplayWindow

A, B, C, D = "a" * 32, "b" * 32, "c" * 32, "d" * 32


class TestReplayWindow:
    def test_empty_registry_means_no_window(self) -> None:
        """A first start, or a clean stop (sent == acked), checks nothing."""
        window = ReplayWindow([(A, "1:2:" + A, 100, 100)])
        assert not window
        assert not window.covers(A, "1:2:" + A, 0)

    def test_window_between_acked_and_sent(self) -> None:
        """Lines before the last run's sent mark may be indexed; later ones are new."""
        key = "1:2:" + A
        window = ReplayWindow([(A, key, 100, 300)])
        assert window
        assert window.covers(A, key, 100)
        assert window.covers(A, key, 299)
        assert not window.covers(A, key, 300)

    def test_same_content_under_another_identity_is_covered(self) -> None:
        """A copy (other inode, same first line) inherits the window of its original."""
        window = ReplayWindow([(B, "1:2:" + B, 0, 50)])
        assert window.covers(B, "1:9:" + B, 10)
        assert not window.covers(C, "1:9:" + C, 10)

    def test_a_copy_behind_its_original_is_covered_up_to_the_original(self) -> None:
        """A copy found before its original had a checkpoint resumes from its own (0) after
        a restart, though the original's lines up to 500 were acknowledged: the index holds
        them, maybe in a backing index rolled over since, so the copy's replay is checked."""
        original, copy = "1:2:" + A, "1:3:" + A
        window = ReplayWindow([(A, original, 500, 500), (A, copy, 0, 0)])
        assert window
        assert window.covers(A, copy, 0)
        assert window.covers(A, copy, 499)
        assert not window.covers(A, copy, 500)

    def test_entries_that_agree_need_no_window(self) -> None:
        """A copy and its original both settled at the same offset: nothing to check."""
        window = ReplayWindow([(A, "1:2:" + A, 500, 500), (A, "1:3:" + A, 500, 500)])
        assert not window

    def test_copy_read_while_running_is_covered(self) -> None:
        """Content already sent under one identity is checked when a copy replays it."""
        window = ReplayWindow()
        original, copy = "1:2:" + D, "1:3:" + D
        window.note_sent(D, original, 400)
        assert window.covers(D, original, 10)  # read again from its checkpoint
        assert not window.covers(D, original, 400)  # read on: new
        assert window.covers(D, copy, 150)  # the copy's first batch is checked too
        window.note_sent(D, copy, 100)
        assert window.covers(D, copy, 150)
        assert not window.covers(D, copy, 400)
        assert window.covers(D, original, 10)  # the copy sent that content too
