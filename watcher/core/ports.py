"""What core needs from the outside, as protocols, and the values that cross them.

The agent wires the real implementations in (named beside each); the unit tests wire fakes. Core reads
the index of done files through `DoneIndex` and never writes it: its changes are `IndexWrite` values
that the agent's loop applies (`watcher.state.index_writes`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from watcher.core.dedupe import KnownUpload

if TYPE_CHECKING:
    from watcher.core.folders import Folder
    from watcher.core.messages import FoundFile
    from watcher.core.signature import FileSignature, RecordId

# ---- the disk ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """A fresh look at a path: its signature, and the wall-clock time of the look (for mtime ages)."""

    signature: FileSignature
    wall_time: float


class FileProbe(Protocol):
    """The scheduler's only window on the disk (`watcher.scan.inventory.DiskProbe`)."""

    def observe(self, path: str) -> Observed | None:
        """The path's signature without following symlinks; None when gone or not a regular file."""

    def looks_complete(self, path: str, size: int) -> bool:
        """Whether the file's own structure says its writer has finished it."""

    def classify(self, path: str, signature: FileSignature, account: str | None) -> FoundFile:
        """Done, failed or pending, from the sidecar and error record beside the file."""

    def failure_still_holds(self, path: str, code: object) -> bool:
        """Whether a permanent failure still applies (an unreadable file may have become readable)."""


# ---- the index of done files ---------------------------------------------------------------------


class DoneFile(Protocol):
    """A done file as the index remembers it: its bytes, and the sidecar that says so."""

    @property
    def signature(self) -> FileSignature: ...

    @property
    def record_id(self) -> RecordId: ...


class DoneIndex(Protocol):
    """What core reads of the done files (`watcher.state.index.HistoryIndex`)."""

    def lookup(self, path: str) -> DoneFile | None: ...

    def may_know(self, path: str) -> bool:
        """Whether `path` may be a done file: the index knows it, or cannot store its name."""

    def __len__(self) -> int: ...

    def count_in(self, folder: str, recursive: bool) -> int:
        """How many done files `folder` holds (and its subfolders', when `recursive`)."""


@dataclass(frozen=True, slots=True)
class MarkDone:
    """Done with these bytes, as recorded in the sidecar `record_id`."""

    path: str
    signature: FileSignature
    account: str
    record_id: RecordId


@dataclass(frozen=True, slots=True)
class Forget:
    path: str


@dataclass(frozen=True, slots=True)
class ForgetUnder:
    """Every done file in `root` and below, except in the directories of `except_dirs`."""

    root: str
    except_dirs: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class AddKnownUpload:
    """Identical bytes anywhere in the account may reuse this upload's fileID (content dedupe)."""

    account: str
    size: int
    sha256: str
    upload: KnownUpload


IndexWrite = MarkDone | Forget | ForgetUnder | AddKnownUpload


# ---- sidecars waiting for their folder, and known uploads ------------------------------------------


@dataclass(frozen=True, slots=True)
class UnwrittenSidecar:
    """A sidecar whose upload succeeded but whose folder refused the write, and the bytes it describes."""

    sidecar: dict[str, Any]
    signature: FileSignature


class SidecarStore(Protocol):
    """Where unwritten sidecars are kept across restarts (`watcher.state.unwritten.UnwrittenSidecars`)."""

    def add(self, path: str, sidecar: dict[str, Any], signature: FileSignature) -> None: ...

    def discard(self, path: str) -> None: ...


class KnownUploads(Protocol):
    """Uploads an account already has, by size and sha256, for the workers' content dedupe
    (`watcher.state.index.HistoryIndex`)."""

    def add(
        self, account: str, size: int, sha256: str, upload: KnownUpload, head: str | None = None
    ) -> None: ...

    def may_hold(self, account: str, size: int, head: str) -> bool:
        """Whether a file of this size and head could be a known upload (then hash it in full)."""
        ...

    def find(self, account: str, size: int, sha256: str) -> KnownUpload | None: ...


# ---- image to video ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoOffer:
    """An image whose sidecar was just written in a folder with `generate`: the pipeline hands it to
    the generator (`watcher.video.generator`), which decides whether and when it becomes a video."""

    folder: Folder
    image: str  # absolute
    file_id: str
    account: str
    sha256: str


class VideoEvents(Protocol):
    """What the generator tells the agent (`watcher.video.outcomes.AgentVideoEvents`), on its thread."""

    def video_submitted(self, folder: Folder, image: str, video_id: str) -> None: ...

    def video_final(
        self,
        folder: Folder,
        image: str,
        record: dict[str, Any],
        result: str,
        video_path: str | None,
        seconds: float | None,
    ) -> None: ...

    def attention(self, account: str, message: str) -> None: ...
