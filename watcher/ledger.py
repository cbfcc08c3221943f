"""What the scheduler knows about files it is not working on: done, failed, empty, and known uploads.

Filled from the sidecars and error records a scan reads and from the results of uploads; consulted
before a file is uploaded, so a rescan or an event on a done file costs one stat and no upload. Pure
data, owned by the scheduler's thread (the scanner only reads `done` through a plain dict lookup).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcher.dedupe import DedupeIndex, KnownUpload
from watcher.file_probe import FileProbe
from watcher.folders import Folder, is_inside
from watcher.messages import FileState, FoundFile, ScanFinished
from watcher.pathindex import PathIndex

if TYPE_CHECKING:
    from watcher.files import FileSignature


@dataclass(frozen=True, slots=True)
class FailedFile:
    signature: FileSignature
    error: str
    code: object


class Ledger:
    def __init__(
        self, dedupe: DedupeIndex | None = None, trusts: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        self.dedupe = dedupe if dedupe is not None else DedupeIndex()
        # Whether this agent wrote a sidecar (its seal verifies): only those lend fileIDs to other files.
        self._trusts = trusts or (lambda sidecar: False)
        self.done: PathIndex[FileSignature] = PathIndex()
        self.failed: PathIndex[FailedFile] = PathIndex()
        self.empty: set[str] = set()  # empty candidates: not timed, an event or a rescan wakes them

    def record_found(self, folder: Folder, found: FoundFile) -> None:
        """A scan (or a settle check) found a sidecar or error record that describes the file."""
        if found.state is FileState.DONE:
            self.done[found.path] = found.signature
            self.failed.pop(found.path)
        if found.state is not FileState.FAILED:
            if found.record is not None and self._trusts(found.record):
                self.add_known_upload(folder, found.signature.size, found.record)
        else:
            record = found.record or {}
            self.mark_failed(found.path, found.signature, str(record.get("error", "")), record.get("code"))

    def add_known_upload(self, folder: Folder, size: int, sidecar: dict[str, Any]) -> None:
        """Identical bytes anywhere in the folder's account may reuse this fileID without an upload."""
        known = KnownUpload(str(sidecar.get("fileID", "")), str(sidecar.get("ossPath", "")))
        self.dedupe.add(folder.account_key, size, str(sidecar.get("sha256", "")), known)

    def mark_done(self, path: str, signature: FileSignature) -> None:
        self.done[path] = signature
        self.failed.pop(path)

    def mark_failed(self, path: str, signature: FileSignature, error: str, code: object) -> None:
        self.failed[path] = FailedFile(signature, error, code)

    def settled(self, path: str, signature: FileSignature, probe: FileProbe) -> bool:
        """Done with these bytes, or failed for good with them (an unreadable file until readable)."""
        if self.done.get(path) == signature:
            return True
        failed = self.failed.get(path)
        if failed is None or failed.signature != signature:
            return False
        return probe.failure_still_holds(path, failed.code)

    def forget(self, path: str) -> None:
        self.done.pop(path)
        self.failed.pop(path)
        self.empty.discard(path)

    def record_removed(self, path: str) -> bool:
        """Its sidecar or error record was deleted: True when that concerned a file known here."""
        return self.done.pop(path) is not None or self.failed.pop(path) is not None

    def reconcile(self, scan: ScanFinished) -> None:
        """Forget what vanished without an event (inotify overflow, network filesystems)."""
        for table in (self.done, self.failed):
            for directory, names in scan.listings.items():
                table.keep_only(directory, names)
            if scan.folder.recursive:
                table.forget_under(scan.root, except_dirs=scan.listings)
        for path in list(self.empty):
            directory, _, name = path.rpartition("/")
            if directory in scan.listings and name not in scan.listings[directory]:
                self.empty.discard(path)

    def forget_folder(self, root: str) -> None:
        for table in (self.done, self.failed):
            table.forget_under(root)
        self.empty = {p for p in self.empty if not is_inside(p, root)}
