"""Upload results: what a finished job means for its file, decided for the scheduler (no I/O)."""

from __future__ import annotations

import logging
from typing import Protocol

from watcher.core.accounts import AccountGates
from watcher.core.backlog import SidecarBacklog
from watcher.core.folders import Folder
from watcher.core.ledger import Ledger
from watcher.core.messages import JobDone
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess, operator_hint
from watcher.core.phases import Phase, Tracked
from watcher.core.retry import RetryPolicy
from watcher.core.settle import SettleTracker
from watcher.log_fields import say

log = logging.getLogger("watcher")


class SchedulerView(Protocol):
    """What results read and change of the scheduler (`watcher.core.scheduler.Scheduler`)."""

    tracked: dict[str, Tracked]
    generation: int
    in_flight: int
    uploaded_count: int
    once: bool
    once_policy: RetryPolicy
    retry_policy: RetryPolicy
    tracker: SettleTracker
    accounts: AccountGates
    ledger: Ledger
    backlog: SidecarBacklog
    gave_up: dict[str, str]
    notices: list[tuple[str, str, str | None]]

    def schedule(self, path: str, entry: Tracked, at: float) -> None: ...

    def untrack(self, path: str) -> None: ...

    def track_now(self, path: str, now: float) -> None: ...

    def settle_seconds(self, folder: Folder) -> float: ...


def on_job_done(s: SchedulerView, done: JobDone, now: float) -> None:
    path = done.job.path
    if done.job.stored_sidecar is not None:
        _on_sidecar_written(s, done, now)
        return
    entry = s.tracked.get(path)
    recheck = entry is not None and entry.recheck
    _on_upload(s, done, now)
    if recheck and path not in s.tracked:
        s.track_now(path, now)  # a touch during the upload: the record may describe the old times


def _on_upload(s: SchedulerView, done: JobDone, now: float) -> None:
    path = done.job.path
    s.in_flight -= 1
    entry = s.tracked.get(path)
    if entry is None:
        return
    if (
        entry.stale
        or entry.phase is not Phase.UPLOADING
        or (done.job.generation != s.generation and entry.folder.account != done.job.account)
    ):
        # Uploaded for a mapping a reload replaced (or while the file was tracked anew, its folder gone
        # and back): whatever it wrote is judged again, afresh.
        entry.stale = False
        entry.attempts = 0
        entry.move(Phase.SETTLING)
        s.schedule(path, entry, now)
        log.info("%s: its folder's settings changed during the upload; checking it again", path)
        return
    outcome = done.outcome
    key = entry.folder.account_key
    if isinstance(outcome, FileChanged):
        log.info("%s: %s; waiting for it to settle again", path, outcome.reason)
        s.accounts.release(key, path)
        entry.move(Phase.SETTLING)
        s.tracker.note_write(path, now)
        s.schedule(path, entry, now + s.settle_seconds(entry.folder))
    elif isinstance(outcome, UploadSuccess):
        _on_success(s, path, done, outcome, now)
        for resumed in s.accounts.on_success(key):
            held = s.tracked.get(resumed)
            if held is not None and held.phase is Phase.PAUSED:
                held.move(Phase.SETTLING)
                s.schedule(resumed, held, now)
    elif not (s.once and _gives_up(s, path, entry, outcome)):
        _on_failure(s, path, entry, done, outcome, now)


def _on_failure(
    s: SchedulerView, path: str, entry: Tracked, done: JobDone, outcome: UploadFailure, now: float
) -> None:
    key = entry.folder.account_key
    account = entry.folder.account
    if outcome.failure_class is FailureClass.TEMPORARY:
        entry.failures += 1
        if not outcome.local and s.accounts.on_temporary(key, path, outcome, now):
            entry.move(Phase.PAUSED)
            return
        delay = s.retry_policy.delay(entry.failures, outcome.retry_after)
        retry, why = entry.failures + 1, "%s: %s; retry %d in %.1f s"
        say(log.warning, why, path, outcome.error, retry, delay, file=path, account=account, event="retry")
        entry.move(Phase.RETRY_WAIT)
        s.schedule(path, entry, now + delay)
    elif outcome.failure_class is FailureClass.PERMANENT:
        if done.record_error:
            what = "%s: %s; and its error record cannot be written: %s"
            args: tuple[object, ...] = (path, outcome.error, done.record_error)
        else:
            what = "%s: %s; error record written, the file is retried when it changes"
            args = (path, outcome.error)
        say(log.error, what, *args, file=path, folder=entry.folder.path, account=account, event="failure")
        if done.moved_to is not None:
            log.info("%s: moved with its error record to %s", path, done.moved_to)
            s.ledger.forget(path)
            s.ledger.failure_moved(entry.folder.path)
        elif done.signature is not None:
            s.ledger.mark_failed(path, done.signature, outcome.error, outcome.code)
        s.untrack(path)
    else:
        s.accounts.on_refused(key, path, outcome, now)
        entry.move(Phase.PAUSED)


def _gives_up(s: SchedulerView, path: str, entry: Tracked, outcome: UploadFailure) -> bool:
    """`scan` only: it reports a file that cannot be uploaded now instead of waiting for an outage."""
    if outcome.failure_class is FailureClass.PERMANENT:
        return False
    if outcome.failure_class is FailureClass.TEMPORARY and not s.once_policy.gives_up(entry.failures + 1):
        return False
    hint = operator_hint(outcome.code if isinstance(outcome.code, int) else None)
    say(
        log.error,
        "%s: %s; not uploaded by this scan%s",
        path,
        outcome.error,
        f" ({hint})" if hint else "",
        file=path,
        account=entry.folder.account,
        event="failure",
    )
    s.gave_up[path] = outcome.error
    s.untrack(path)
    return True


def _on_success(s: SchedulerView, path: str, done: JobDone, outcome: UploadSuccess, now: float) -> None:
    assert done.signature is not None
    how = "reused the fileID of identical bytes" if done.reused else f"uploaded in {done.seconds:.2f} s"
    job = done.job
    file_id = outcome.file_id
    if done.record_error is not None and done.sidecar is not None:
        say(
            log.error,
            "%s: %s (%s), but its sidecar cannot be written: %s; the fileID is kept and the sidecar "
            "written as soon as the folder allows",
            path,
            file_id,
            how,
            done.record_error,
            file=path,
            folder=job.root,
            account=job.account,
            file_id=file_id,
            event="attention",
        )
        s.backlog.keep(path, done.sidecar, done.signature, now)
        refused = f"{path}: its sidecar cannot be written ({done.record_error}); the folder {job.root}"
        s.notices.append((job.account_key, f"{refused} refuses writes", job.root))
        if s.once:
            s.gave_up[path] = f"uploaded as {file_id}, but the sidecar cannot be written"
    else:
        say(
            log.info,
            "%s: %s → %s",
            path,
            how,
            file_id,
            file=path,
            folder=job.root,
            account=job.account,
            file_id=file_id,
            event="upload",
        )
        s.uploaded_count += 1
        if done.moved_to is not None:
            log.info("%s: moved with its sidecar to %s", path, done.moved_to)
            s.ledger.forget(path)
        else:
            s.ledger.mark_done(path, done.signature, job.account or "", done.record_id)
    s.ledger.failed.pop(path)
    s.untrack(path)


def _on_sidecar_written(s: SchedulerView, done: JobDone, now: float) -> None:
    """A job that only wrote a sidecar an earlier upload could not (`watcher.core.backlog`)."""
    path = done.job.path
    if isinstance(done.outcome, FileChanged):
        # The file changed or vanished: it is uploaded again anyway, if it is still there.
        if s.backlog.obsolete(path) and done.signature is not None:
            s.track_now(path, now)
    elif done.record_error is not None:
        s.backlog.refused_again(path, now)
    else:
        stored = s.backlog.written(path)
        if stored is not None:
            file_id = str(stored.sidecar.get("fileID", ""))
            say(
                log.info,
                "%s: sidecar written at last → %s",
                path,
                file_id,
                file=path,
                folder=done.job.root,
                account=done.job.account,
                file_id=file_id,
                event="upload",
            )
            s.uploaded_count += 1
            if done.moved_to is None:
                s.ledger.mark_done(path, stored.signature, done.job.account or "", done.record_id)
