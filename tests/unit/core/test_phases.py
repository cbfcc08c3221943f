"""The phase table: every move it lists is made, every other refused."""

from __future__ import annotations

import itertools

import pytest

from watcher.core.folders import Folder
from watcher.core.phases import MOVES, IllegalMove, Phase, Tracked

A = Folder("/drop/a", "111111", recursive=False, polling=False)
LEGAL = sorted((source, target) for source, targets in MOVES.items() for target in targets)
ILLEGAL = sorted(set(itertools.product(Phase, Phase)) - set(LEGAL))


def in_phase(phase: Phase) -> Tracked:
    """An entry brought to `phase` through legal moves only, as the scheduler brings it."""
    entry = Tracked(A)
    path = {
        Phase.SETTLING: [],
        Phase.QUEUED: [Phase.QUEUED],
        Phase.UPLOADING: [Phase.QUEUED, Phase.UPLOADING],
        Phase.RETRY_WAIT: [Phase.QUEUED, Phase.UPLOADING, Phase.RETRY_WAIT],
        Phase.PAUSED: [Phase.PAUSED],
    }[phase]
    for step in path:
        entry.move(step)
    assert entry.phase is phase
    return entry


def test_a_file_starts_settling() -> None:
    assert Tracked(A).phase is Phase.SETTLING


def test_every_phase_has_a_row_and_every_phase_is_reached() -> None:
    assert set(MOVES) == set(Phase)
    assert set().union(*MOVES.values()) == set(Phase)


@pytest.mark.parametrize(("source", "target"), LEGAL)
def test_every_legal_move_is_made(source: Phase, target: Phase) -> None:
    entry = in_phase(source)
    entry.move(target)
    assert entry.phase is target


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_other_move_is_refused_and_named(source: Phase, target: Phase) -> None:
    entry = in_phase(source)
    with pytest.raises(IllegalMove, match=f"from {source} to {target}"):
        entry.move(target)
    assert entry.phase is source


def test_uploading_is_entered_only_from_the_queue() -> None:
    assert [source for source, target in LEGAL if target is Phase.UPLOADING] == [Phase.QUEUED]


def test_the_phase_is_not_assigned_but_moved() -> None:
    entry = Tracked(A)
    with pytest.raises(AttributeError):
        entry.phase = Phase.UPLOADING  # type: ignore[misc]
