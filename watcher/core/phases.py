"""A tracked file's phases, and the table of every move between them (`docs/architecture.md`).

`Tracked.move()` makes the moves the table lists and refuses the others; leaving the table (done,
failed for good, deleted) is not a move: the scheduler stops tracking the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from watcher.core.folders import Folder


class Phase(StrEnum):
    SETTLING = "settling"
    QUEUED = "queued"
    UPLOADING = "uploading"
    RETRY_WAIT = "retry_wait"
    PAUSED = "paused"


# From each phase, the phases a file may move to. Every move back to SETTLING is a fresh look: the
# file changed, its folder's mapping did, its retry or its account's resumption came.
MOVES: dict[Phase, frozenset[Phase]] = {
    # Looked at again (a write, a reload); settled: queued, or held with its account.
    Phase.SETTLING: frozenset({Phase.SETTLING, Phase.QUEUED, Phase.PAUSED}),
    # Dispatched; held when its account was paused meanwhile; started over by a reload.
    Phase.QUEUED: frozenset({Phase.UPLOADING, Phase.PAUSED, Phase.SETTLING}),
    # Its result: a temporary failure waits, a held or refused account holds it; the file changed
    # meanwhile, or a reload changed its folder, so it is judged afresh.
    Phase.UPLOADING: frozenset({Phase.RETRY_WAIT, Phase.PAUSED, Phase.SETTLING}),
    # Its retry time came, or the file was written meanwhile.
    Phase.RETRY_WAIT: frozenset({Phase.SETTLING}),
    # Its account's probe; its account resumed, or a reload started it over.
    Phase.PAUSED: frozenset({Phase.QUEUED, Phase.SETTLING}),
}


class IllegalMove(RuntimeError):
    """A move the table does not list: a bug in the scheduler, never a condition of the files."""

    def __init__(self, source: Phase, target: Phase) -> None:
        super().__init__(f"a tracked file cannot move from {source} to {target}")
        self.source = source
        self.target = target


@dataclass(slots=True)
class Tracked:
    folder: Folder
    due: float = 0.0
    failures: int = 0  # temporary failures in a row
    attempts: int = 0  # attempts since the file last changed
    # The upload in flight was started under a folder mapping that a reload has since changed: its
    # result must not be recorded as this file's.
    stale: bool = False
    # Its times or mode changed while it uploaded (no write: the upload stands): look again after it.
    recheck: bool = False
    _phase: Phase = Phase.SETTLING

    @property
    def phase(self) -> Phase:
        return self._phase

    def move(self, to: Phase) -> None:
        if to not in MOVES[self._phase]:
            raise IllegalMove(self._phase, to)
        self._phase = to
