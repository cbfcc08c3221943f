"""What the scheduler knows about files it is not working on: done, failed, empty, and known uploads.

Done files and known uploads live in the index (read through `DoneIndex`; changed by the `IndexWrite`
values the agent takes with `take_writes`); failed and empty files, few and re-read at each start,
stay here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watcher.core.dedupe import KnownUpload
from watcher.core.folders import Folder, is_inside
from watcher.core.messages import FileState, FoundFile, ScanFinished
from watcher.core.pathindex import PathIndex
from watcher.core.ports import (
    AddKnownUpload,
    DoneIndex,
    FileProbe,
    Forget,
    ForgetUnder,
    IndexWrite,
    MarkDone,
)
from watcher.core.wording import count

if TYPE_CHECKING:
    from watcher.core.signature import FileSignature, RecordId


@dataclass(frozen=True, slots=True)
class FailedFile:
    signature: FileSignature
    error: str
    code: object


class Ledger:
    def __init__(self, done: DoneIndex, trusts: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.done = done
        # Whether this agent wrote a sidecar (its seal verifies): only those lend fileIDs to other files.
        self._trusts = trusts or (lambda sidecar: False)
        self.failed: PathIndex[FailedFile] = PathIndex()
        self.empty: set[str] = set()  # empty candidates: not timed, an event or a rescan wakes them
        # Folder → failures moved to its failed_dir: still failed (metrics), counted by each walk of the
        # whole folder, and one more at each move in between.
        self.moved_failed: dict[str, int] = {}
        self._writes: list[IndexWrite] = []

    def take_writes(self) -> list[IndexWrite]:
        """The index changes decided since the last call, in order, for the agent to apply."""
        writes, self._writes = self._writes, []
        return writes

    def record_found(self, folder: Folder, found: FoundFile) -> None:
        """A scan (or a settle check) found a sidecar or error record that describes the file."""
        if found.state is FileState.DONE:
            self.mark_done(found.path, found.signature, folder.account or "", found.record_id)
        elif found.state is FileState.PENDING:
            self._writes.append(Forget(found.path))  # the index said done, the disk does not: the disk wins
        if found.state is not FileState.FAILED:
            if found.record is not None and self._trusts(found.record):
                self.add_known_upload(folder, found.signature.size, found.record)
        else:
            record = found.record or {}
            self.mark_failed(found.path, found.signature, str(record.get("error", "")), record.get("code"))

    def add_known_upload(self, folder: Folder, size: int, sidecar: dict[str, Any]) -> None:
        """Identical bytes anywhere in the folder's account may reuse this fileID without an upload."""
        known = KnownUpload(str(sidecar.get("fileID", "")), str(sidecar.get("ossPath", "")))
        self._writes.append(AddKnownUpload(folder.account_key, size, str(sidecar.get("sha256", "")), known))

    def mark_done(self, path: str, signature: FileSignature, account: str, record_id: RecordId) -> None:
        """Done with these bytes, recorded in the sidecar `record_id` (the next start reads it again if
        it is no longer the same file)."""
        self._writes.append(MarkDone(path, signature, account, record_id))
        self.failed.pop(path)

    def mark_failed(self, path: str, signature: FileSignature, error: str, code: object) -> None:
        self.failed[path] = FailedFile(signature, error, code)

    def settled(self, path: str, signature: FileSignature, probe: FileProbe) -> bool:
        """Done with these bytes, or failed for good with them (an unreadable file until readable)."""
        done = self.done.lookup(path)
        # `cp -p` keeps everything but the ctime.
        if done is not None and done.signature == signature and done.signature.ctime_ns == signature.ctime_ns:
            return True
        failed = self.failed.get(path)
        if failed is None or failed.signature != signature:
            return False
        return probe.failure_still_holds(path, failed.code)

    def forget(self, path: str) -> None:
        self._writes.append(Forget(path))
        self.failed.pop(path)
        self.empty.discard(path)

    def record_removed(self, path: str) -> bool:
        """Its sidecar or error record was deleted: True when that concerned a file known here."""
        if self.done.may_know(path):
            self._writes.append(Forget(path))
            return True
        return self.failed.pop(path) is not None

    def failure_moved(self, folder: str) -> None:
        self.moved_failed[folder] = self.moved_failed.get(folder, 0) + 1

    def reconcile(self, scan: ScanFinished) -> None:
        """Forget what vanished without an event (inotify overflow, network filesystems).

        The scanner already forgot the done files that left a directory it listed (it compares each
        listing with the index); what is left here is the directories that went, and failed files.
        """
        if scan.moved_failed is not None:
            self.moved_failed[scan.folder.path] = scan.moved_failed
        for directory, names in scan.listings.items():
            self.failed.keep_only(directory, names)
        if scan.folder.recursive:
            present = scan.listings.keys() | scan.unlisted
            self._writes.append(ForgetUnder(scan.root, present))
            self.failed.forget_under(scan.root, except_dirs=present)
        for path in list(self.empty):
            directory, _, name = path.rpartition("/")
            if directory in scan.listings and name not in scan.listings[directory]:
                self.empty.discard(path)

    def ready_summary(self, folders: Sequence[Folder], pending: int) -> str:
        """What the `ready:` line says: the configured folders' files only (the index may hold others')."""
        done = sum(self.done.count_in(f.path, f.recursive) for f in folders)
        folders_, files = count(len(folders), "folder"), count(done, "file")
        return f"{folders_}, {files} already uploaded, {pending} pending, {len(self.failed)} failed"

    def forget_folder(self, root: str) -> None:
        self._writes.append(ForgetUnder(root))
        self.failed.forget_under(root)
        self.moved_failed.pop(root, None)
        self.empty = {p for p in self.empty if not is_inside(p, root)}
