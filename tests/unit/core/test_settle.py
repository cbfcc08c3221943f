"""Unit tests for the settle rule (`watcher.core.settle.SettleTracker`) with an injected clock.

`now` is the monotonic clock, `wall_now` the wall clock compared with the file's mtime. Unless a test is
about the "mtime is already old" shortcut, `wall_now` equals the file's mtime (the file was just written),
so only the monotonic observations decide.
"""

from __future__ import annotations

import pytest

from watcher.core.settle import DEFAULT_CONFIRM_SECONDS, Ready, SettleTracker, WaitUntil
from watcher.core.signature import FileSignature

SETTLE = 2.0
MTIME_S = 1_700_000_000
MTIME_NS = MTIME_S * 10**9
PATH = "/drop/cat.png"


def sig(size: int = 1000, mtime_ns: int = MTIME_NS) -> FileSignature:
    return FileSignature(size=size, mtime_ns=mtime_ns, ino=42)


def check(
    tracker: SettleTracker,
    signature: FileSignature,
    now: float,
    *,
    complete: bool = False,
    wall_now: float | None = None,
    path: str = PATH,
) -> Ready | WaitUntil:
    return tracker.check(
        path,
        signature,
        now=now,
        wall_now=signature.mtime_ns / 1e9 if wall_now is None else wall_now,
        looks_complete=complete,
    )


def test_ready_only_after_size_and_mtime_unchanged_for_settle_seconds() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    assert check(tracker, s, 10.0) == WaitUntil(12.0)
    assert check(tracker, s, 11.0) == WaitUntil(12.0)
    assert check(tracker, s, 11.99) == WaitUntil(12.0)
    assert check(tracker, s, 12.0) == Ready(s)
    assert check(tracker, s, 30.0) == Ready(s)
    assert tracker.signature(PATH) == s


def test_a_size_change_restarts_the_settle_window() -> None:
    tracker = SettleTracker(SETTLE)
    assert check(tracker, sig(size=100), 10.0) == WaitUntil(12.0)
    grown = sig(size=200)
    assert check(tracker, grown, 11.5) == WaitUntil(13.5)
    # 2 s after the first sighting, but only 0.5 s after the change: not ready.
    assert check(tracker, grown, 12.0) == WaitUntil(13.5)
    assert check(tracker, grown, 13.5) == Ready(grown)


def test_an_mtime_change_alone_restarts_the_settle_window() -> None:
    tracker = SettleTracker(SETTLE)
    first = sig(mtime_ns=MTIME_NS)
    touched = sig(mtime_ns=MTIME_NS + 1)  # same size, mtime one nanosecond later
    assert check(tracker, first, 10.0) == WaitUntil(12.0)
    assert check(tracker, touched, 11.0, wall_now=MTIME_S) == WaitUntil(13.0)
    assert check(tracker, touched, 12.5, wall_now=MTIME_S) == WaitUntil(13.0)
    assert check(tracker, touched, 13.0, wall_now=MTIME_S) == Ready(touched)


def test_a_write_note_restarts_the_settle_window() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    assert check(tracker, s, 10.0) == WaitUntil(12.0)
    tracker.note_write(PATH, 11.5)
    assert check(tracker, s, 12.0) == WaitUntil(13.5)
    assert check(tracker, s, 13.5) == Ready(s)


def test_a_write_note_for_an_unknown_path_is_ignored() -> None:
    tracker = SettleTracker(SETTLE)
    tracker.note_write(PATH, 5.0)
    assert PATH not in tracker
    assert len(tracker) == 0


def test_finished_and_complete_shortens_to_the_confirmation_window() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    assert check(tracker, s, 10.0) == WaitUntil(12.0)
    tracker.note_finished(PATH, 10.5)
    assert tracker.is_finished(PATH)
    decision = check(tracker, s, 10.5, complete=True)
    # Right after the close: never ready, but the wait is the short confirmation, not the full settle.
    assert isinstance(decision, WaitUntil)
    assert decision.at == pytest.approx(10.5 + DEFAULT_CONFIRM_SECONDS)
    assert check(tracker, s, 10.6, complete=True) == decision
    assert check(tracker, s, 10.75, complete=True) == Ready(s)


def test_first_check_right_after_the_close_is_never_ready_even_without_an_earlier_stat() -> None:
    tracker = SettleTracker(SETTLE)
    tracker.note_finished(PATH, 10.0)
    assert PATH in tracker
    assert tracker.signature(PATH) is None  # the hint alone is not a stat
    s = sig()
    decision = check(tracker, s, 10.0, complete=True)
    assert isinstance(decision, WaitUntil)
    assert 10.0 < decision.at <= 10.0 + DEFAULT_CONFIRM_SECONDS + 1e-9
    assert isinstance(check(tracker, s, 10.1, complete=True), WaitUntil)
    assert check(tracker, s, 10.25, complete=True) == Ready(s)


def test_confirmation_window_is_never_longer_than_settle_and_never_zero() -> None:
    tracker = SettleTracker(0.1)
    assert 0 < tracker.confirm_seconds <= 0.1
    s = sig()
    tracker.note_finished(PATH, 50.0)
    assert isinstance(check(tracker, s, 50.0, complete=True), WaitUntil)


def test_finished_but_not_structurally_complete_waits_the_full_settle() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    tracker.note_finished(PATH, 10.0)
    assert check(tracker, s, 10.0, complete=False) == WaitUntil(12.0)
    assert check(tracker, s, 11.0, complete=False) == WaitUntil(12.0)
    assert check(tracker, s, 12.0, complete=False) == Ready(s)


def test_a_write_after_the_close_cancels_the_shortcut() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    tracker.note_finished(PATH, 10.0)
    assert isinstance(check(tracker, s, 10.0, complete=True), WaitUntil)
    tracker.note_write(PATH, 10.1)
    assert not tracker.is_finished(PATH)
    assert check(tracker, s, 10.5, complete=True) == WaitUntil(12.1)


def test_a_structure_seen_whole_counts_for_that_signature_until_a_write() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    tracker.note_finished(PATH, 10.0)
    assert not tracker.seen_complete(PATH, s)
    assert isinstance(check(tracker, s, 10.0, complete=True), WaitUntil)
    assert tracker.seen_complete(PATH, s)
    assert not tracker.seen_complete(PATH, sig(size=1001)), "another version of the file was never read"
    tracker.note_write(PATH, 10.1)
    assert not tracker.seen_complete(PATH, s), "a write since: the structure must be read again"
    assert not tracker.seen_complete("/drop/other.png", s)


def test_an_empty_file_is_never_ready() -> None:
    tracker = SettleTracker(SETTLE)
    empty = sig(size=0)
    tracker.note_finished(PATH, 0.0)
    for now in (0.0, 1.0, 5.0, 100.0, 10_000.0):
        # Even finished, "complete" and with an ancient mtime.
        decision = check(tracker, empty, now, complete=True, wall_now=MTIME_S + 1e6)
        assert decision == WaitUntil(now + SETTLE)


def test_an_empty_file_that_gets_bytes_then_settles_normally() -> None:
    tracker = SettleTracker(SETTLE)
    assert check(tracker, sig(size=0), 10.0) == WaitUntil(12.0)
    full = sig(size=10)
    assert check(tracker, full, 11.0) == WaitUntil(13.0)
    assert check(tracker, full, 13.0) == Ready(full)


def test_a_file_with_an_old_mtime_needs_only_the_confirmation_window() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    wall = MTIME_S + 3600.0  # found by a scan an hour after it was written
    decision = check(tracker, s, 10.0, wall_now=wall)
    assert isinstance(decision, WaitUntil)  # still never Ready on first sight
    assert decision.at == pytest.approx(10.0 + DEFAULT_CONFIRM_SECONDS)
    assert check(tracker, s, 10.25, wall_now=wall + 0.25) == Ready(s)


def test_an_mtime_exactly_settle_seconds_old_counts_as_quiet_but_a_younger_one_does_not() -> None:
    young = SettleTracker(SETTLE)
    assert check(young, sig(), 10.0, wall_now=MTIME_S + 1.5) == WaitUntil(12.0)
    old = SettleTracker(SETTLE)
    decision = check(old, sig(), 10.0, wall_now=MTIME_S + SETTLE)
    assert isinstance(decision, WaitUntil)
    assert decision.at == pytest.approx(10.0 + DEFAULT_CONFIRM_SECONDS)


def test_an_mtime_in_the_future_does_not_shorten_the_wait() -> None:
    tracker = SettleTracker(SETTLE)
    assert check(tracker, sig(), 10.0, wall_now=MTIME_S - 100.0) == WaitUntil(12.0)


def test_paths_are_tracked_independently() -> None:
    tracker = SettleTracker(SETTLE)
    a, b = sig(size=1), sig(size=2)
    assert check(tracker, a, 10.0, path="/d/a.png") == WaitUntil(12.0)
    assert check(tracker, b, 11.0, path="/d/b.png") == WaitUntil(13.0)
    assert check(tracker, a, 12.0, path="/d/a.png") == Ready(a)
    assert check(tracker, b, 12.0, path="/d/b.png") == WaitUntil(13.0)
    assert len(tracker) == 2


def test_forget_drops_the_history() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    check(tracker, s, 10.0)
    tracker.note_finished(PATH, 10.0)
    assert PATH in tracker
    tracker.forget(PATH)
    assert PATH not in tracker
    assert len(tracker) == 0
    assert tracker.signature(PATH) is None
    assert not tracker.is_finished(PATH)
    # Long after the first sighting, but forgotten: the window starts over.
    assert check(tracker, s, 100.0) == WaitUntil(102.0)
    tracker.forget("/never/seen.png")  # no error


def test_settle_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SettleTracker(0)
    with pytest.raises(ValueError):
        SettleTracker(-1.0)


def test_looking_again_exactly_at_wait_until_at_finds_the_file_ready() -> None:
    tracker = SettleTracker(SETTLE)
    s = sig()
    tracker.note_finished(PATH, 10.0)
    decision = check(tracker, s, 10.0, complete=True)
    assert isinstance(decision, WaitUntil)
    assert check(tracker, s, decision.at, complete=True) == Ready(s)
