"""The video state table: every move it lists is made, every other refused."""

from __future__ import annotations

import itertools

import pytest

from watcher.core.video import VideoState
from watcher.core.video_phases import MOVES, IllegalVideoMove, check_move

LEGAL = sorted(
    ((s, t) for s, targets in MOVES.items() for t in targets), key=lambda m: (m[0].value, m[1].value)
)
ILLEGAL = sorted(
    set(itertools.product(VideoState, VideoState)) - set(LEGAL), key=lambda m: (m[0].value, m[1].value)
)


def test_every_state_has_a_row_and_every_state_is_reached() -> None:
    assert set(MOVES) == set(VideoState)
    assert set().union(*MOVES.values()) == set(VideoState)


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=lambda s: s.value)
def test_a_listed_move_is_made(source: VideoState, target: VideoState) -> None:
    assert check_move(source, target) is target


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=lambda s: s.value)
def test_any_other_move_is_refused(source: VideoState, target: VideoState) -> None:
    with pytest.raises(IllegalVideoMove) as caught:
        check_move(source, target)
    assert (caught.value.source, caught.value.target) == (source, target)


def test_nothing_is_sent_twice_without_the_operator() -> None:
    # The only way back to QUEUED from an end is `retry`; an unknown create never goes to SUBMITTING by itself.
    assert VideoState.SUBMITTING not in MOVES[VideoState.UNKNOWN]
    assert VideoState.SUBMITTING not in MOVES[VideoState.FAILED]
    assert MOVES[VideoState.DONE] == frozenset()
    # A busy answer goes back to QUEUED: it never skips the journalled SUBMITTING step.
    assert MOVES[VideoState.QUEUED] == {VideoState.SUBMITTING, VideoState.FAILED}
