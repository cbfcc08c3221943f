"""The closed set of messages the agent's loop handles, and the jobs it hands to workers; each message
that names a folder carries the config generation it was made under."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from watcher.core.folders import Folder

if TYPE_CHECKING:
    from watcher.core.outcome import UploadOutcome
    from watcher.core.signature import FileSignature, RecordId


class EventKind(StrEnum):
    WRITE = "write"  # created or written: not quiet yet
    # Its mode, owner or times changed (chmod +r on an unreadable file, touch): look again, as for a
    # write; a change of bytes shows in the signature, so an upload in flight is not discarded for it.
    ATTRIB = "attrib"
    FINISHED = "finished"  # closed after writing, or renamed into place by its writer
    DELETED = "deleted"  # gone, or renamed away
    RECORD_DELETED = "record_deleted"  # an image's sidecar or error record was removed: look at it again
    DIR_APPEARED = "dir_appeared"  # a subfolder was created or moved in (recursive folders)
    ROOT_GONE = "root_gone"  # the watched folder itself was deleted or moved away
    EVENTS_LOST = "events_lost"  # the kernel's inotify queue overflowed: the folder needs a full listing


@dataclass(frozen=True, slots=True)
class PathEvent:
    kind: EventKind
    path: str
    folder: Folder
    generation: int = 0


class FileState(StrEnum):
    DONE = "done"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class FoundFile:
    path: str
    signature: FileSignature
    state: FileState
    # The sidecar (DONE) or error record (FAILED) that decided the state; for PENDING, a sidecar that
    # matches all but the inode (the bytes may be the same: dedupe may reuse its fileID after a hash).
    record: dict[str, Any] | None = None
    # Which sidecar that was (DONE): while the same one lies beside the same file, the index skips both.
    record_id: RecordId = (0, 0)


@dataclass(frozen=True)
class ScanBatch:
    folder: Folder
    files: list[FoundFile]
    generation: int = 0


@dataclass(frozen=True)
class ScanFinished:
    folder: Folder
    root: str  # the folder or subfolder that was walked
    # Every directory walked, with the names of the candidates it reported (pending, failed, empty):
    # not the done ones, so that a walk of a million done files does not hold a million names.
    listings: dict[str, set[str]]
    initial: bool
    generation: int = 0
    # Directories a periodic rescan found unchanged since it last listed them, and did not list again.
    unlisted: frozenset[str] = frozenset()
    moved_failed: int | None = None  # files with their error record in failed_dir; None: not counted


@dataclass(frozen=True)
class UploadJob:
    path: str
    account: str | None  # None: the token's only account
    expected: FileSignature | None  # the settled signature; None accepts whatever is there now
    attempt: int = 1  # counts attempts since the file last changed, for the error record
    generation: int = 0
    # Set when the upload already happened and only its sidecar is left to write (the folder refused
    # it earlier): the worker writes this instead of uploading.
    stored_sidecar: dict[str, Any] | None = None
    # The watched folder `path` lies in: nothing above it is trusted, every component below it is
    # opened without following symlinks. "" (the `upload` command) trusts the path as given.
    root: str = ""
    # Where the file and its record move once the sidecar (done) or error record (failed) is written.
    done_dir: str | None = None
    failed_dir: str | None = None
    # The media kinds of the file's folder: its bytes are uploaded only when their format is of one.
    kinds: frozenset[str] = frozenset({"image"})
    # The done file this one was renamed from, and its sidecar's id: that sidecar goes once this
    # file's own is written (`watcher.core.renames`).
    renamed_from: tuple[str, RecordId] | None = None

    @property
    def account_key(self) -> str:
        return self.account or ""


@dataclass(frozen=True)
class JobDone:
    job: UploadJob
    outcome: UploadOutcome
    signature: FileSignature | None
    reused: bool
    seconds: float
    sidecar: dict[str, Any] | None = None
    record_error: str | None = None  # the sidecar or error record could not be written
    moved_to: str | None = None  # where the file went with its record (done_dir / failed_dir)
    record_id: RecordId = (0, 0)  # the sidecar written (for the index)


@dataclass(frozen=True, slots=True)
class EventsLost:
    """More of a folder's events waited than the inbox keeps (`watcher.core.inbox`): they were dropped, and
    the folder is rescanned instead."""

    folder: Folder
    generation: int = 0


class Control(StrEnum):
    RELOAD = "reload"
    STOP = "stop"


# What the scheduler itself consumes; Control is the agent shell's.
FileMessage = PathEvent | ScanBatch | ScanFinished | JobDone
Message = FileMessage | EventsLost | Control
