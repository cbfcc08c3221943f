"""The scheduler's vocabulary: a tracked file's phase and entry, and what it reports to the shell.

The transitions between phases are the scheduler's (see the diagram in `watcher.core.scheduler`).
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


@dataclass
class Tracked:
    folder: Folder
    phase: Phase = Phase.SETTLING
    due: float = 0.0
    failures: int = 0  # temporary failures in a row
    attempts: int = 0  # attempts since the file last changed
    # The upload in flight was started under a folder mapping that a reload has since changed: its
    # result must not be recorded as this file's.
    stale: bool = False
    # Its times or mode changed while it uploaded (no write: the upload stands): look again after it.
    recheck: bool = False


@dataclass(frozen=True)
class FolderChanges:
    """What a reconfiguration means for the I/O shell: watches to stop, folders to watch and scan."""

    removed: tuple[Folder, ...]
    added: tuple[Folder, ...]


@dataclass(frozen=True)
class Summary:
    folders: int
    uploading: int
    pending: int
    failed: int
    uploaded: int
    paused: str  # "" when no account is held
