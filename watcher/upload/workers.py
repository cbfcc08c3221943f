"""Upload workers: threads that take one `UploadJob` at a time and post back a `JobDone`.

A worker does the file's I/O from start to end (open, sniff, dedupe or upload, write the sidecar or
error record) so the scheduler's loop never waits on a disk or a socket. Write events that arrive for
a file while it uploads are noted in `InFlightChanges`; a result for bytes that changed meanwhile is
turned into `FileChanged`, never recorded.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from watcher.core.dedupe import KnownUploads
from watcher.core.folders import Folder
from watcher.core.media import SIDECAR_SUFFIX
from watcher.core.messages import JobDone, UploadJob
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess
from watcher.core.signature import NO_RECORD_ID, signature_of
from watcher.disk.files import lstat_beneath
from watcher.disk.folder_sync import FolderSyncs
from watcher.disk.mover import Mover, record_suffix, why_not_moved
from watcher.disk.records import read_record, write_error_record, write_sidecar_atomically
from watcher.hooks.events import HookEvent
from watcher.hooks.intent import RecordPlace
from watcher.hooks.runner import HookRunner, PreparedRun
from watcher.log_fields import fields
from watcher.state.seal import SidecarSeal
from watcher.upload.client import UploadClient
from watcher.upload.pipeline import (
    drop_renamed_sidecar,
    error_record_for,
    record_success,
    sidecar_for,
    upload_one,
)

log = logging.getLogger("watcher")


class InFlightChanges:
    """Write events seen for files while they upload, so a worker can tell its bytes went stale.

    Observers bump, workers begin/end; the stat comparison in the uploader covers changes made too
    fast for the event to arrive before the upload ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed: dict[str, bool] = {}

    def begin(self, path: str) -> None:
        with self._lock:
            self._changed[path] = False

    def bump(self, path: str) -> None:
        with self._lock:
            if path in self._changed:
                self._changed[path] = True

    def end(self, path: str) -> bool:
        with self._lock:
            return self._changed.pop(path, False)


class Workers:
    """`count` threads (grown on reload, never shrunk) sharing one job queue."""

    def __init__(
        self,
        client: Callable[[], UploadClient],
        dedupe: KnownUploads,
        post: Callable[[Any], None],
        seal: SidecarSeal | None = None,
        hooks: HookRunner | None = None,
        folder_for: Callable[[str], Folder | None] | None = None,
        mover: Mover | None = None,
    ) -> None:
        self._client = client  # called per job: a reload swaps the client, jobs in flight keep theirs
        self._mover = mover or Mover(None)
        self._dedupe = dedupe
        self._seal = seal
        self._hooks = hooks  # told of each durable record, from the worker: submit waits for an fsync
        # The folder a path belongs to under the config in force now (a plain read of the scheduler's
        # folders, replaced whole on reload): a result made under a mapping a reload replaced is not
        # moved or announced; the scheduler judges the file again.
        self._folder_for = folder_for
        self._post = post
        # Folder fsyncs after sidecar renames, batched across files (group commit).
        self.folder_syncs = FolderSyncs()
        self.changes = InFlightChanges()
        self._jobs: queue.SimpleQueue[UploadJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        # Uploads in flight: path → [bytes sent, size], for the live status.
        self._sending: dict[str, list[int]] = {}
        # When a job last started, ended or sent bytes: the systemd watchdog is pinged only while
        # this moves or nothing is in flight, so a worker stuck for good stops the pings.
        self.last_progress = time.monotonic()

    def ensure(self, count: int) -> None:
        if not self._threads:
            self.folder_syncs.start()
        while len(self._threads) < count:
            thread = threading.Thread(target=self._loop, name=f"upload-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: UploadJob) -> None:
        if job.stored_sidecar is None:
            self.changes.begin(job.path)
        self._jobs.put(job)

    @property
    def busy(self) -> int:
        return self._busy

    def sending(self) -> list[tuple[str, int, int]]:
        """(path, bytes sent, size) of each upload in flight."""
        with self._busy_lock:
            return [(path, sent, size) for path, (sent, size) in self._sending.items()]

    def stop(self, deadline: float) -> bool:
        """Ask every thread to end; wait until `deadline`. True when uploads were still in flight."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.folder_syncs.stop(max(1.0, deadline - time.monotonic()))
        return self._busy > 0 and any(t.is_alive() for t in self._threads)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._busy_lock:
                self._busy += 1
            self.last_progress = time.monotonic()
            started = time.monotonic()
            try:
                done = self._run(job, started)
            except Exception as exc:  # a bug must not lose the file: report it as temporary
                log.exception("unexpected error while uploading %s", job.path, extra=fields(
                    file=job.path, folder=job.root, account=job.account, event="retry"))  # fmt: skip
                failure = UploadFailure(FailureClass.TEMPORARY, f"internal error: {exc}", "internal")
                done = JobDone(job, failure, None, False, time.monotonic() - started)
            with self._busy_lock:
                self._busy -= 1
            self.last_progress = time.monotonic()
            self._post(done)

    def _folder_sync_for(self, job: UploadJob) -> Callable[[int], None] | None:
        """The batched folder fsync, unless the sidecar must be durable before what follows: a move
        to done_dir (its own records are ordered) or an on_upload hook (told of a durable sidecar)."""
        if job.done_dir is not None or (self._hooks is not None and self._hooks.will_run("on_upload")):
            return None
        return self.folder_syncs.request

    def _still_mapped(self, job: UploadJob) -> bool:
        if self._folder_for is None:
            return True
        folder = self._folder_for(job.path)
        return folder is not None and (folder.account, folder.done_dir, folder.failed_dir) == (
            job.account,
            job.done_dir,
            job.failed_dir,
        )

    def _progress_of(self, path: str) -> Callable[[int], None]:
        def note(sent: int) -> None:
            self.last_progress = time.monotonic()
            entry = self._sending.get(path)
            if entry is not None:
                entry[0] = sent  # one worker per path: no other writer

        return note

    def _run(self, job: UploadJob, started: float) -> JobDone:
        if job.stored_sidecar is not None:
            return write_stored_sidecar(job, self._hooks, self._mover)
        with self._busy_lock:
            self._sending[job.path] = [0, job.expected.size if job.expected is not None else 0]
        client = self._client()
        try:
            outcome, signature, reused = upload_one(client, job, self._dedupe, self._progress_of(job.path))
        finally:
            with self._busy_lock:
                self._sending.pop(job.path, None)
        if self.changes.end(job.path) and not isinstance(outcome, FileChanged):
            outcome = FileChanged("the file was written to while it was uploaded")
        seconds = time.monotonic() - started
        if signature is None:
            return JobDone(job, outcome, signature, reused, seconds)
        sidecar = (
            sidecar_for(job, outcome, signature, self._seal, client.owner.base_url)
            if isinstance(outcome, UploadSuccess)
            else None
        )
        failed = isinstance(outcome, UploadFailure) and outcome.failure_class is FailureClass.PERMANENT
        # The file's own sidecar verified by hash (its change time moved: a chmod, a link): rewritten
        # with the new time, and nothing announced again (a hook run after `chmod -R` would be a storm).
        refresh = reused and sidecar is not None and names_the_same_upload(job, sidecar)
        record: dict[str, Any] | None = None
        if isinstance(outcome, UploadFailure) and failed:
            record = error_record_for(job, outcome, signature)
        # The hook run is on disk before the record is: a kill -9 between the two cannot lose it.
        run = None if refresh else prepare_hook(self._hooks, job, signature.ino, sidecar, record)
        record_id = NO_RECORD_ID
        try:
            if sidecar is not None:
                record_id = record_success(job, sidecar, self._folder_sync_for(job))
                renamed_from = drop_renamed_sidecar(job)
                if renamed_from is not None:
                    log.info("%s: renamed from %s, whose sidecar is removed", job.path, renamed_from,
                             extra=fields(file=job.path, folder=job.root, account=job.account))  # fmt: skip
            elif record is not None:
                write_error_record(job.path, record, job.root)
        except OSError as exc:
            cancel_hook(self._hooks, run)
            return JobDone(
                job, outcome, signature, reused, seconds, sidecar, record_error=exc.strerror or str(exc)
            )
        if not self._still_mapped(job):
            cancel_hook(self._hooks, run)
            return JobDone(job, outcome, signature, reused, seconds, sidecar)
        written = sidecar if sidecar is not None else record
        moved_to = move_recorded(self._mover, job, written, done=sidecar is not None) if written else None
        commit_hook(self._hooks, run, moved_to)
        if refresh:
            log.info("%s: its change time moved (a chmod, a link, a rename) but it holds the bytes its "
                     "sidecar names: the sidecar is refreshed, nothing uploaded", job.path,
                     extra=fields(file=job.path, folder=job.root, account=job.account))  # fmt: skip
        return JobDone(
            job, outcome, signature, reused, seconds, sidecar, moved_to=moved_to, record_id=record_id
        )


def names_the_same_upload(job: UploadJob, sidecar: dict[str, Any]) -> bool:
    """Whether the sidecar beside the file (read before it is replaced) already names this upload."""
    old = read_record(job.path + SIDECAR_SUFFIX, root=job.root)
    return old is not None and all(
        old.get(k) == sidecar.get(k) for k in ("fileID", "sha256", "size", "account")
    )


def prepare_hook(
    hooks: HookRunner | None,
    job: UploadJob,
    ino: int,
    sidecar: dict[str, Any] | None,
    error_record: dict[str, Any] | None = None,
) -> PreparedRun | None:
    """Journal the hook run of a record about to be written (`HookRunner.prepare`); None when no hook
    runs for it. A failure to journal is logged, never turned into the upload's."""
    if sidecar is None and error_record is None:
        return None
    if hooks is None or not hooks.will_run("on_upload" if sidecar is not None else "on_failure"):
        return None  # not configured: no event to build for each file of a burst
    done = sidecar is not None
    place = RecordPlace(
        job.root, job.path, record_suffix(done), job.done_dir if done else job.failed_dir, ino
    )
    try:
        return hooks.prepare(hook_event(job, None, sidecar, error_record), place)
    except Exception:
        log.exception("%s: the hook run could not be recorded", job.path)
        return None


def commit_hook(hooks: HookRunner | None, run: PreparedRun | None, moved_to: str | None) -> None:
    """The record is durable (and moved): the prepared run may start."""
    if hooks is None or run is None:
        return
    try:
        hooks.commit(run, moved_to)
    except Exception:
        log.exception("%s: the hook run could not be started", run.event.subject)


def cancel_hook(hooks: HookRunner | None, run: PreparedRun | None) -> None:
    if hooks is not None and run is not None:
        try:
            hooks.cancel(run)
        except Exception:
            log.exception("%s: the hook run could not be cancelled", run.event.subject)


def hook_event(
    job: UploadJob,
    moved_to: str | None,
    sidecar: dict[str, Any] | None,
    error_record: dict[str, Any] | None = None,
) -> HookEvent:
    """The upload or failure event of a job whose record is durable, naming where the file is now.

    Built from the record this worker wrote, never read back from the folder: someone could have
    replaced it meanwhile, and a hook is handed only what the agent itself wrote.
    """
    path = moved_to or job.path
    name = {"file": os.path.basename(path)}
    if sidecar is not None:
        return HookEvent.for_upload(path, job.root, {**sidecar, **name})
    return HookEvent.for_failure(path, job.root, {**(error_record or {}), **name}, job.account)


def move_recorded(mover: Mover, job: UploadJob, record: dict[str, Any], *, done: bool) -> str | None:
    """Move a file whose record (`record`, as this worker wrote it) is durable to its folder's done_dir
    / failed_dir; its new path, or None when it stays (no such folder configured, or the move failed:
    logged, the file keeps its record)."""
    dest = job.done_dir if done else job.failed_dir
    if dest is None or not job.root:
        return None
    try:
        return mover.move(job.path, record_suffix(done), job.root, dest, record)
    except OSError as exc:
        log.error("%s: cannot move it to %s: %s; it stays beside its %s", job.path, dest,
                  why_not_moved(exc), "sidecar" if done else "error record",
                  extra=fields(file=job.path, folder=job.root, event="attention"))  # fmt: skip
        return None


def write_stored_sidecar(
    job: UploadJob, hooks: HookRunner | None = None, mover: Mover | None = None
) -> JobDone:
    """Write a sidecar whose upload happened earlier, if the file still holds the bytes it describes.

    The file is looked at, and the sidecar written, from below `job.root` without following a symlink:
    a folder on the way that became one makes the file count as gone.
    """
    assert job.stored_sidecar is not None and job.expected is not None
    sidecar = job.stored_sidecar
    try:
        current = signature_of(lstat_beneath(job.root, job.path))
    except OSError:
        return JobDone(job, FileChanged("the file is gone"), None, True, 0.0)
    if current != job.expected:
        return JobDone(job, FileChanged("the file changed"), current, True, 0.0)
    success = UploadSuccess(
        str(sidecar.get("fileID", "")),
        str(sidecar.get("ossPath", "")),
        str(sidecar.get("sha256", "")),
        current.size,
        str(sidecar.get("contentType", "")),
    )
    run = prepare_hook(hooks, job, current.ino, sidecar)
    try:
        record_id = write_sidecar_atomically(job.path, sidecar, job.root)
    except OSError as exc:
        cancel_hook(hooks, run)
        return JobDone(job, success, current, True, 0.0, sidecar, record_error=exc.strerror or str(exc))
    moved_to = move_recorded(mover or Mover(None), job, sidecar, done=True)
    commit_hook(hooks, run, moved_to)
    return JobDone(job, success, current, True, 0.0, sidecar, moved_to=moved_to, record_id=record_id)
