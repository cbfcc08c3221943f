"""The per-file path: send one file, record the result beside it, move it, and tell the hooks.

One path for the agent's workers (`run`, `scan`) and for `minimax-watcher upload`. The scheduler decides
*when*; this decides nothing about scheduling and keeps nothing of a file once its job is done.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Protocol

from watcher.core.folders import Folder, folder_containing
from watcher.core.media import SIDECAR_SUFFIX, kind_of_name
from watcher.core.messages import JobDone, UploadJob
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadOutcome, UploadSuccess
from watcher.core.ports import KnownUploads, VideoOffer
from watcher.core.retry import RetryPolicy
from watcher.core.signature import NO_RECORD_ID, FileSignature, RecordId, record_id_of, signature_of
from watcher.disk.files import lstat_beneath, parent_beneath
from watcher.disk.folder_sync import FolderSyncs
from watcher.disk.mover import Mover, record_suffix
from watcher.disk.records import (
    build_error_record,
    build_sidecar,
    read_record,
    write_error_record,
    write_sidecar_atomically,
)
from watcher.hooks.events import HookEvent
from watcher.hooks.intent import RecordPlace
from watcher.hooks.runner import HookRunner, PreparedRun
from watcher.log_fields import say
from watcher.upload.client import UploadClient
from watcher.upload.send import Progress, account_of, upload_one

log = logging.getLogger("watcher")


class Sealer(Protocol):
    """Seals a sidecar (`watcher.state.seal.SidecarSeal`): only sealed sidecars lend their fileIDs."""

    def seal(self, sidecar: dict[str, Any]) -> dict[str, Any]: ...


class VideoSink(Protocol):
    """Takes the images to turn into videos (`watcher.video.generator.Generator`): cheap, never blocks."""

    def offer(self, offer: VideoOffer) -> None: ...


class InFlightChanges:
    """Write events seen for files while they upload, so that a result for stale bytes is never recorded.

    The loop notes a job (`begin`) before a worker takes it and bumps on each write event; the stat
    comparison in `upload_one` covers changes made too fast for their event to arrive in time.
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


class Pipeline:
    """One file, start to finish; shared by the threads that run jobs, it holds nothing of a file."""

    def __init__(
        self,
        *,
        dedupe: KnownUploads | None = None,
        seal: Sealer | None = None,
        hooks: HookRunner | None = None,
        mover: Mover | None = None,
        videos: VideoSink | None = None,
    ) -> None:
        self._dedupe = dedupe
        self._videos = videos
        self._seal = seal
        self._hooks = hooks  # told of each durable record: `prepare` waits for an fsync
        self._mover = mover or Mover(None)
        # Folder fsyncs after sidecar renames, batched across files once started (group commit).
        self._folder_syncs = FolderSyncs()
        self.changes = InFlightChanges()
        # The folders in force, a tuple the loop replaces whole (`follow`): worker threads read it, never
        # the scheduler. None (`upload`): no watched folder whose settings a reload could change.
        self._folders: tuple[Folder, ...] | None = None

    # ---- what the loop and the workers call ------------------------------------------------------

    def follow(self, folders: Iterable[Folder]) -> None:
        """The folders in force from now on (at start, and after each reload or takeover)."""
        self._folders = tuple(folders)

    @property
    def roots(self) -> list[str]:
        """The paths of the folders in force (the mover's: a done_dir below one is reached from it)."""
        return [folder.path for folder in self._folders or ()]

    def expect(self, job: UploadJob) -> None:
        """`job` is queued: a write event for its file from now on makes its result stale."""
        if job.stored_sidecar is None:
            self.changes.begin(job.path)

    def start(self) -> None:
        self._folder_syncs.start()

    def stop(self, timeout: float) -> None:
        self._folder_syncs.stop(timeout)

    def run(self, job: UploadJob, client: UploadClient, progress: Progress | None = None) -> JobDone:
        """Send the file (or write the sidecar it was refused earlier), record the result, move the
        file with its record where its folder says, and tell the hooks."""
        if job.stored_sidecar is not None:
            return self._write_stored_sidecar(job)
        started = time.monotonic()
        try:
            outcome, signature, reused = upload_one(client, job, self._dedupe, progress)
        finally:
            written = self.changes.end(job.path)
        if written and not isinstance(outcome, FileChanged):
            outcome = FileChanged("the file was written to while it was uploaded")
        seconds = time.monotonic() - started
        if signature is None:
            return JobDone(job, outcome, signature, reused, seconds)
        return self._record(job, outcome, signature, reused, seconds, client.owner.base_url)

    def run_until_final(
        self,
        job: UploadJob,
        client: UploadClient,
        policy: RetryPolicy,
        progress: Progress | None = None,
    ) -> JobDone:
        """`run`, again after each temporary failure as `policy` says, until the result is final or the
        policy gives up (`minimax-watcher upload`: a person waits for it)."""
        attempt = 1
        while True:
            done = self.run(replace(job, attempt=attempt), client, progress)
            outcome = done.outcome
            if (
                not isinstance(outcome, UploadFailure)
                or outcome.failure_class is not FailureClass.TEMPORARY
                or policy.gives_up(attempt)
            ):
                return done
            delay = policy.delay(attempt, outcome.retry_after)
            log.warning("%s: %s; retrying in %.1f s", job.path, outcome.error, delay)
            time.sleep(delay)
            attempt += 1

    # ---- the steps -------------------------------------------------------------------------------

    def _record(
        self,
        job: UploadJob,
        outcome: UploadOutcome,
        signature: FileSignature,
        reused: bool,
        seconds: float,
        base_url: str | None,
    ) -> JobDone:
        sidecar = None
        if isinstance(outcome, UploadSuccess):
            sidecar = sidecar_for(job, outcome, signature, self._seal, base_url)
        record = None
        if isinstance(outcome, UploadFailure) and outcome.failure_class is FailureClass.PERMANENT:
            record = error_record_for(job, outcome, signature)
        # The file's own sidecar verified by hash (its change time moved: a chmod, a link): rewritten
        # with the new time, and nothing announced again (a hook run after `chmod -R` would be a storm).
        refresh = reused and sidecar is not None and names_the_same_upload(job, sidecar)
        # The hook run is on disk before the record is: a kill -9 between the two cannot lose it.
        run = None if refresh else self._prepare_hook(job, signature.ino, sidecar, record)
        record_id = NO_RECORD_ID
        try:
            if sidecar is not None:
                record_id = write_sidecar_atomically(
                    job.path, sidecar, job.root, sync_folder=self._sync_folder_for(job)
                )
                self._drop_renamed_sidecar(job)
            elif record is not None:
                write_error_record(job.path, record, job.root)
        except OSError as exc:
            self._cancel_hook(run)
            why = exc.strerror or str(exc)
            return JobDone(job, outcome, signature, reused, seconds, sidecar, record_error=why)
        if not self._still_mapped(job):
            # Made under settings a reload replaced: not moved or announced; the scheduler judges again.
            self._cancel_hook(run)
            return JobDone(job, outcome, signature, reused, seconds, sidecar)
        moved_to = self._move_and_tell(job, sidecar, record, run)
        if sidecar is not None and not refresh:
            self._offer_video(job, sidecar)
        if refresh:
            say(
                log.info,
                "%s: its change time moved (a chmod, a link, a rename) but it holds the bytes its "
                "sidecar names: the sidecar is refreshed, nothing uploaded",
                job.path,
                file=job.path,
                folder=job.root,
                account=job.account,
            )
        return JobDone(
            job, outcome, signature, reused, seconds, sidecar, moved_to=moved_to, record_id=record_id
        )

    def _write_stored_sidecar(self, job: UploadJob) -> JobDone:
        """Write a sidecar whose upload happened earlier, if the file still holds the bytes it describes.

        The file is looked at from below `job.root` without following a symlink: a folder on the way
        that became one makes the file count as gone.
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
        run = self._prepare_hook(job, current.ino, sidecar)
        try:
            # Its folder is fsynced here, not batched: the journal of unwritten sidecars forgets it next.
            record_id = write_sidecar_atomically(job.path, sidecar, job.root)
        except OSError as exc:
            self._cancel_hook(run)
            why = exc.strerror or str(exc)
            return JobDone(job, success, current, True, 0.0, sidecar, record_error=why)
        moved_to = self._move_and_tell(job, sidecar, None, run)
        self._offer_video(job, sidecar)
        return JobDone(job, success, current, True, 0.0, sidecar, moved_to=moved_to, record_id=record_id)

    def _sync_folder_for(self, job: UploadJob) -> Callable[[int], None] | None:
        """The batched folder fsync, unless the sidecar must be durable before what follows: a move
        to done_dir (its own records are ordered) or an on_upload hook (told of a durable sidecar)."""
        if job.done_dir is not None or (self._hooks is not None and self._hooks.will_run("on_upload")):
            return None
        return self._folder_syncs.request

    def _still_mapped(self, job: UploadJob) -> bool:
        folders = self._folders  # one read: the loop replaces the tuple whole
        if folders is None:
            return True
        folder = folder_containing(job.path, folders)
        return folder is not None and (folder.account, folder.done_dir, folder.failed_dir) == (
            job.account,
            job.done_dir,
            job.failed_dir,
        )

    def _drop_renamed_sidecar(self, job: UploadJob) -> None:
        """After the file's own sidecar is written: remove the sidecar left at the name it was renamed
        from (`job.renamed_from`), if that name is still free and the sidecar is the one the index
        recorded."""
        if job.renamed_from is None:
            return
        old_path, record_id = job.renamed_from
        try:
            with parent_beneath(job.root, old_path) as (dir_fd, name):
                try:
                    os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    return  # a file took the old name again: the sidecar may be its own
                except FileNotFoundError:
                    pass
                if _record_id_at(dir_fd, name + SIDECAR_SUFFIX) != record_id:
                    return  # written or replaced since: not the one this file left behind
                os.unlink(name + SIDECAR_SUFFIX, dir_fd=dir_fd)
        except OSError:
            return  # gone already, or its folder went: nothing to tidy
        say(
            log.info,
            "%s: renamed from %s, whose sidecar is removed",
            job.path,
            old_path,
            file=job.path,
            folder=job.root,
            account=job.account,
        )

    def _move_and_tell(
        self,
        job: UploadJob,
        sidecar: dict[str, Any] | None,
        error_record: dict[str, Any] | None,
        run: PreparedRun | None,
    ) -> str | None:
        """The record is durable: move the file with it (done_dir / failed_dir), then start the hook
        run prepared for it. Where the file is now, when it moved."""
        record = sidecar if sidecar is not None else error_record
        moved_to = None
        if record is not None:
            moved_to = self._move(job, record, done=sidecar is not None)
        if self._hooks is not None and run is not None:
            try:
                self._hooks.commit(run, moved_to)
            except Exception:
                log.exception("%s: the hook run could not be started", run.event.subject)
        return moved_to

    def _move(self, job: UploadJob, record: dict[str, Any], *, done: bool) -> str | None:
        """Move a file whose record (`record`, as written here) is durable to its folder's done_dir /
        failed_dir; its new path, or None when it stays (no such folder configured, or the move
        failed: logged, the file keeps its record)."""
        dest = job.done_dir if done else job.failed_dir
        if dest is None or not job.root:
            return None
        if done and self._generating(job) is not None:
            return None  # it moves once its video has ended (`watcher.video.outcomes`)
        moved = self._mover.move_with_record(job.path, job.root, dest, record, done=done)
        return moved if isinstance(moved, str) else None

    def _generating(self, job: UploadJob) -> Folder | None:
        """The job's folder when it turns images into videos (SPEC §8) and a generator listens."""
        if self._videos is None or self._folders is None:
            return None
        folder = folder_containing(job.path, self._folders)
        return folder if folder is not None and folder.generate is not None else None

    def _offer_video(self, job: UploadJob, sidecar: dict[str, Any]) -> None:
        """A sidecar was just written in a folder with `generate`: its image may become a video (only
        images; the generator tells end frames apart)."""
        folder = self._generating(job)
        if folder is None or self._videos is None or kind_of_name(os.path.basename(job.path)) != "image":
            return
        self._videos.offer(
            VideoOffer(
                folder,
                job.path,
                str(sidecar.get("fileID", "")),
                str(sidecar.get("account") or job.account or ""),
                str(sidecar.get("sha256", "")),
            )
        )

    def _prepare_hook(
        self,
        job: UploadJob,
        ino: int,
        sidecar: dict[str, Any] | None,
        error_record: dict[str, Any] | None = None,
    ) -> PreparedRun | None:
        """Journal the hook run of a record about to be written (`HookRunner.prepare`); None when no
        hook runs for it. A failure to journal is logged, never turned into the upload's."""
        hooks = self._hooks
        if sidecar is None and error_record is None:
            return None
        if hooks is None or not hooks.will_run("on_upload" if sidecar is not None else "on_failure"):
            return None  # not configured: no event to build for each file of a burst
        done = sidecar is not None
        folder = job.done_dir if done else job.failed_dir
        place = RecordPlace(job.root, job.path, record_suffix(done), folder, ino)
        try:
            return hooks.prepare(_hook_event(job, sidecar, error_record), place)
        except Exception:
            log.exception("%s: the hook run could not be recorded", job.path)
            return None

    def _cancel_hook(self, run: PreparedRun | None) -> None:
        if self._hooks is not None and run is not None:
            try:
                self._hooks.cancel(run)
            except Exception:
                log.exception("%s: the hook run could not be cancelled", run.event.subject)


def sidecar_for(
    job: UploadJob,
    success: UploadSuccess,
    signature: FileSignature,
    seal: Sealer | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """The sidecar for an upload, sealed when a seal is given (only sealed sidecars lend fileIDs);
    `base_url`: the API it was uploaded to (`ApiOwner.base_url`), recorded with it."""
    sidecar = build_sidecar(
        base_url=base_url,
        image_path=job.path,
        account=account_of(job, success.file_id),
        file_id=success.file_id,
        oss_path=success.oss_path,
        signature=signature,
        sha256=success.sha256,
        content_type=success.content_type,
    )
    return seal.seal(sidecar) if seal is not None else sidecar


def error_record_for(job: UploadJob, failure: UploadFailure, signature: FileSignature) -> dict[str, Any]:
    """The error record of a permanent failure."""
    return build_error_record(
        error=failure.error, code=failure.code, attempts=job.attempt, signature=signature
    )


def names_the_same_upload(job: UploadJob, sidecar: dict[str, Any]) -> bool:
    """Whether the sidecar beside the file (read before it is replaced) already names this upload."""
    old = read_record(job.path + SIDECAR_SUFFIX, root=job.root)
    return old is not None and all(
        old.get(k) == sidecar.get(k) for k in ("fileID", "sha256", "size", "account")
    )


def _hook_event(
    job: UploadJob, sidecar: dict[str, Any] | None, error_record: dict[str, Any] | None = None
) -> HookEvent:
    """The upload or failure event of a job whose record is about to be written, naming the file.

    Built from the record written here, never read back from the folder: someone could have replaced
    it meanwhile, and a hook is handed only what the agent itself wrote.
    """
    name = {"file": os.path.basename(job.path)}
    if sidecar is not None:
        return HookEvent.for_upload(job.path, job.root, {**sidecar, **name})
    return HookEvent.for_failure(job.path, job.root, {**(error_record or {}), **name}, job.account)


def _record_id_at(dir_fd: int, name: str) -> RecordId:
    return record_id_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
