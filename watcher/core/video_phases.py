"""A video's states and the table of every legal move between them (like `core/phases.py`)."""

from __future__ import annotations

from watcher.core.video import VideoState

Q, S, G, D = VideoState.QUEUED, VideoState.SUBMITTING, VideoState.GENERATING, VideoState.DOWNLOADING
DONE, FAILED, UNKNOWN = VideoState.DONE, VideoState.FAILED, VideoState.UNKNOWN

MOVES: dict[VideoState, frozenset[VideoState]] = {
    # Sent (journalled first); or its prompt file or end frame is bad.
    Q: frozenset({S, FAILED}),
    # The create's answer: a videoId; busy or paused (nothing spent: queued again); refused; lost.
    # QUEUED→SUBMITTING→UNKNOWN is also what a restart finds an unanswered create to be.
    S: frozenset({G, Q, FAILED, UNKNOWN}),
    # Polled to its end: completed, or failed/moderated/removed/never final.
    G: frozenset({D, FAILED}),
    # The MP4 is on disk, or it could not be fetched.
    D: frozenset({DONE, FAILED}),
    DONE: frozenset(),
    # Only the operator's `retry` leaves these.
    FAILED: frozenset({Q}),
    UNKNOWN: frozenset({Q}),
}


class IllegalVideoMove(RuntimeError):
    """A move the table does not list: a bug in the generator, never a condition of the API."""

    def __init__(self, source: VideoState, target: VideoState) -> None:
        super().__init__(f"a video cannot move from {source.value} to {target.value}")
        self.source = source
        self.target = target


def check_move(source: VideoState, target: VideoState) -> VideoState:
    """`target` when the table lists the move; raises IllegalVideoMove otherwise."""
    if target not in MOVES[source]:
        raise IllegalVideoMove(source, target)
    return target
