"""The scheduler: every decision about every file, as a plain object with no I/O of its own.

Like h11's state machine, everything that affects a file's fate lives here, and nothing here reads a
clock, starts a thread or touches the filesystem. The agent feeds it messages with the monotonic time
(`handle(message, now)`), asks it for the uploads that may start now (`due(now)`) and for when to ask
again (`next_deadline()`). Questions about the disk (does the file still exist, what does its sidecar
say) go through the injected `FileProbe`; the fileIDs whose sidecar a folder refused are persisted
through the injected `SidecarStore`. So every rule below is unit-tested with a fake clock and a fake
probe, and the I/O shell around it (agent.py, worker.py) stays thin.

A file's phases:

    SETTLING ──ready──▶ QUEUED ──dispatched──▶ UPLOADING ──success / permanent──▶ (untracked)
       ▲   ▲                                      │
       │   └──────── RETRY_WAIT ◀──temporary──────┤
       │              PAUSED ◀──account held──────┘ (and QUEUED/SETTLING files of a held account)
       └──── changed during upload, account resumed, write event

A file waiting for its settle time, its retry or its account holds one small entry and one timer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, assert_never

from watcher.core.accounts import AccountGates
from watcher.core.backlog import SidecarBacklog, SidecarStore, StoredSidecar
from watcher.core.fair import FairQueue, FairTimers
from watcher.core.folders import Folder, folder_of, is_inside
from watcher.core.ledger import Ledger
from watcher.core.media import NAME_TOO_LONG, name_problem
from watcher.core.messages import (
    EventKind,
    FileMessage,
    FileState,
    JobDone,
    PathEvent,
    ScanBatch,
    ScanFinished,
    UploadJob,
)
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess, operator_hint
from watcher.core.ports import FileProbe
from watcher.core.renames import RecentlyGone
from watcher.core.retry import RetryPolicy
from watcher.core.settle import DEFAULT_CONFIRM_SECONDS, Ready, SettleTracker
from watcher.core.timings import Timings
from watcher.core.tracking import FolderChanges, Phase, Summary, Tracked
from watcher.log_fields import fields

if TYPE_CHECKING:
    from watcher.state.index import HistoryIndex

log = logging.getLogger("watcher")

# A loop turn looks at no more files than this. The same turn takes upload results and stop requests,
# pings the watchdog and hands out uploads: 100,000 files found at once (a first start over an archive,
# an rsync of a whole folder) would otherwise hold it for tens of seconds, the workers idle and the
# watchdog silent. What is left stays due, so the next turn comes straight after. The looks go to the
# folders with files due in turn, as do the free upload slots (`watcher.core.fair`).
LOOKS_PER_TURN = 64
# Timers of files no longer waiting (untracked, or rescheduled) are dropped once they outnumber the
# tracked files by this many: a churn of files made and deleted leaves no timer behind for long.
STALE_TIMERS = 4096


class Scheduler:
    def __init__(
        self,
        folders: Iterable[Folder],
        *,
        settle_seconds: float,
        concurrency: int,
        probe: FileProbe,
        store: SidecarStore,
        history: HistoryIndex,
        retry_policy: RetryPolicy | None = None,
        timings: Timings | None = None,
        once: bool = False,
        once_policy: RetryPolicy | None = None,
        trusts: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.folders: tuple[Folder, ...] = tuple(folders)
        self.concurrency = concurrency
        self.generation = 0
        self.retry_policy = retry_policy or RetryPolicy()
        self.timings = timings or Timings()
        self.once = once
        # `scan` gives a file up after this policy's attempts instead of waiting out an outage.
        self.once_policy = once_policy or RetryPolicy(give_up_after=5)
        self._probe = probe

        self.tracker = SettleTracker(settle_seconds)
        self.accounts = AccountGates(self.retry_policy)
        self.ledger = Ledger(history, trusts)
        self.gone = RecentlyGone()  # done files renamed away, for their old sidecars
        self.tracked: dict[str, Tracked] = {}
        self.unwritten = SidecarBacklog(store, self.timings.sidecar_retry)
        self.gave_up: dict[str, str] = {}  # `scan` only: files it stopped retrying, and why
        # (account, message, folder) for the on_attention hook, taken by the agent (`take_notices`).
        self.notices: list[tuple[str, str, str | None]] = []
        self.uploaded_count = 0
        self.in_flight = 0

        self._timers = FairTimers()
        self._ready = FairQueue()
        self._initial_scans_left = len(self.folders)
        self.ready = self._initial_scans_left == 0

    def begin(self, folders: Iterable[Folder]) -> None:
        """The folders to work on at start (those this agent holds); READY waits for their first scans."""
        self.folders = tuple(folders)
        self._initial_scans_left = len(self.folders)
        self.ready = self._initial_scans_left == 0

    # ---- the questions the shell asks ------------------------------------------------------------

    def folder_for(self, path: str) -> Folder | None:
        return folder_of(path, self.folders)

    def next_deadline(self) -> float:
        return min(self.unwritten.next_retry, self.accounts.next_deadline(), self._timers.next_deadline())

    def idle(self) -> bool:
        """Nothing left to do (`scan` exits); sidecars waiting for a read-only folder do not count."""
        return not self.tracked and self.in_flight == 0 and not self.unwritten.writing

    def summary(self) -> Summary:
        return Summary(
            folders=len(self.folders),
            uploading=self.in_flight,
            pending=max(0, len(self.tracked) - self.in_flight) + len(self.ledger.empty),
            failed=len(self.ledger.failed),
            uploaded=self.uploaded_count,
            paused=self.accounts.describe() if self.accounts.paused else "",
        )

    def take_notices(self) -> list[tuple[str, str, str | None]]:
        """What the operator should hear of (an account paused or resumed, a folder refusing writes),
        once each: (account, message, folder)."""
        notices = [(key, message, None) for key, message in self.accounts.notices] + self.notices
        self.accounts.notices.clear()
        self.notices = []
        return notices

    def counts_by_folder(self) -> dict[str, tuple[int, int]]:
        """Folder path → (pending, failed), for the metrics."""
        counts = {f.path: [0, 0] for f in self.folders}
        for entry in self.tracked.values():
            if entry.folder.path in counts:
                counts[entry.folder.path][0] += 1
        for index, paths in ((0, self.ledger.empty), (1, self.ledger.failed.paths())):
            for path in paths:
                folder = self.folder_for(path)
                if folder is not None:
                    counts[folder.path][index] += 1
        return {path: (pending, failed) for path, (pending, failed) in counts.items()}

    # ---- messages --------------------------------------------------------------------------------

    def handle(self, message: FileMessage, now: float) -> None:
        match message:
            case PathEvent():
                self._on_event(message, now)
            case ScanBatch():
                self._on_scan_batch(message, now)
            case ScanFinished():
                self._on_scan_finished(message)
            case JobDone():
                self._on_job_done(message, now)
            case _:
                assert_never(message)

    def _current_folder(self, folder: Folder, generation: int, path: str) -> Folder | None:
        """The folder a message's path belongs to now: its own if nothing was reloaded since."""
        if generation == self.generation:
            return folder
        return self.folder_for(path)

    def _on_event(self, event: PathEvent, now: float) -> None:
        folder = self._current_folder(event.folder, event.generation, event.path)
        if folder is None:
            return  # its folder was removed by a reload
        path = event.path
        if event.kind is EventKind.DELETED:
            known = self.ledger.done.lookup(path)
            if known is not None:
                self.gone.note(folder.path, path, known.signature, known.record_id, now)
            self.ledger.forget(path)
            self.unwritten.discard(path)
            entry = self.tracked.get(path)
            if entry is not None and entry.phase is not Phase.UPLOADING:
                self._untrack(path)
            return
        # A removed sidecar is written again (dedupe avoids a second upload); a removed error record is
        # the operator asking for another try. Other removals of records concern nothing we track.
        if event.kind is EventKind.RECORD_DELETED and not self.ledger.record_removed(path):
            return
        self.ledger.empty.discard(path)
        entry = self.tracked.get(path)
        if entry is None:
            entry = self.tracked[path] = Tracked(folder)
        if event.kind is EventKind.FINISHED:
            # Look at once: the confirmation window then runs from the writer's close, not after it.
            self.tracker.note_finished(path, now)
            wait = 0.0
        elif event.kind is EventKind.ATTRIB:
            wait = 0.0  # the look itself tells whether the bytes changed too
        else:
            self.tracker.note_write(path, now)
            wait = self._settle_seconds(entry.folder)
        if entry.phase is Phase.SETTLING and (entry.due <= now or entry.due > now + wait):
            self._schedule(path, entry, now + wait)
        elif entry.phase is Phase.UPLOADING and event.kind is EventKind.ATTRIB:
            entry.recheck = True
        elif entry.phase in (Phase.RETRY_WAIT, Phase.PAUSED) and event.kind is EventKind.WRITE:
            # The file changed: a new version gets a fresh start (its account may still be held).
            entry.failures = 0
            if entry.phase is Phase.RETRY_WAIT:
                entry.phase = Phase.SETTLING
                self._schedule(path, entry, now + wait)

    def _on_scan_batch(self, batch: ScanBatch, now: float) -> None:
        for found in batch.files:
            folder = self._current_folder(batch.folder, batch.generation, found.path)
            if folder is None:
                continue
            if batch.generation != self.generation and folder.account != batch.folder.account:
                # Judged against another account's sidecars: look at it afresh.
                self._track_now(found.path, now)
            elif found.state is FileState.PENDING:
                self.ledger.record_found(folder, found)  # a sidecar in doubt may lend its fileID
                if found.path not in self.unwritten:
                    self._track_now(found.path, now)
            elif found.path not in self.tracked:
                self.ledger.record_found(folder, found)

    def _on_scan_finished(self, message: ScanFinished) -> None:
        self.ledger.reconcile(message)
        if message.initial and not self.ready:
            self._initial_scans_left -= 1
            if self._initial_scans_left <= 0:
                self.ready = True
                log.info(
                    "ready: %d folders, %d files already uploaded, %d pending, %d failed",
                    len(self.folders),
                    len(self.ledger.done),
                    len(self.tracked),
                    len(self.ledger.failed),
                )

    # ---- settling --------------------------------------------------------------------------------

    def _schedule(self, path: str, entry: Tracked, at: float) -> None:
        entry.due = at
        self._timers.push(entry.folder.path, at, path)
        if len(self._timers) > 2 * len(self.tracked) + STALE_TIMERS:
            self._timers.compact(self._waits_for)

    def _waits_for(self, at: float, path: str) -> bool:
        """Whether the timer (at, path) is the one a tracked file waits for."""
        entry = self.tracked.get(path)
        return entry is not None and entry.due == at and entry.phase in (Phase.SETTLING, Phase.RETRY_WAIT)

    def _track_now(self, path: str, now: float) -> None:
        folder = self.folder_for(path)
        if folder is None:
            return
        self.ledger.empty.discard(path)
        entry = self.tracked.get(path)
        if entry is None:
            entry = self.tracked[path] = Tracked(folder)
            self._schedule(path, entry, now)
        elif entry.folder != folder:
            # The folder's mapping changed under it (a reload): it starts over under the new one.
            self.accounts.release(entry.folder.account_key, path)
            entry.folder = folder
            entry.failures = 0
            if entry.phase is Phase.UPLOADING:
                entry.stale = True
            else:
                entry.phase = Phase.SETTLING
                self._schedule(path, entry, now)

    def _fire_timers(self, now: float) -> None:
        looks = 0
        for at, path in self._timers.due(now):
            entry = self.tracked.get(path)
            if entry is None or entry.due != at:
                continue  # superseded by a later schedule
            if entry.phase in (Phase.SETTLING, Phase.RETRY_WAIT):
                entry.phase = Phase.SETTLING
                self._settle_check(path, entry, now)
                looks += 1
                if looks >= LOOKS_PER_TURN:
                    break
        for key, probe in self.accounts.due_probes(now):
            entry = self.tracked.get(probe)
            if entry is None:
                self.accounts.release(key, probe)
                continue
            entry.phase = Phase.QUEUED
            self._ready.appendleft(entry.folder.path, probe)

    def _settle_seconds(self, folder: Folder) -> float:
        return folder.settle_seconds or self.tracker.settle_seconds

    def _settle_check(self, path: str, entry: Tracked, now: float) -> None:
        seen = self._probe.observe(path) if entry.folder.admits(path) else None
        if seen is None:
            self._untrack(path)
            return
        signature = seen.signature
        if self.ledger.settled(path, signature, self._probe):
            self._untrack(path)
            return
        stored = self.unwritten.get(path)
        if stored is not None:
            if stored.signature == signature:
                self._untrack(path)  # uploaded already; only its sidecar is waiting for the folder
                return
            self.unwritten.discard(path)
        problem = name_problem(path.rpartition("/")[2])
        if problem is not None:
            # No record can exist beside it, so the log says it, once per version of the file.
            log.error(
                "%s: %s", path, problem, extra=fields(file=path, folder=entry.folder.path, event="failure")
            )
            self.ledger.mark_failed(path, signature, problem, NAME_TOO_LONG)
            self._untrack(path)
            return
        if signature.size == 0:
            # A writer that has not started: its first write (an event) or the next rescan wakes it.
            # Re-checking every settle time would cost a stat per empty file per second, forever.
            self._untrack(path)
            if self.once:
                self.gave_up[path] = "the file is empty"
                log.error("%s: the file is empty; not uploaded by this scan", path,
                          extra=fields(file=path, folder=entry.folder.path, event="failure"))  # fmt: skip
            else:
                self.ledger.empty.add(path)
            return
        complete = self.tracker.is_finished(path) and (
            self.tracker.seen_complete(path, signature) or self._probe.looks_complete(path, signature.size)
        )
        decision = self.tracker.check(
            path,
            signature,
            now=now,
            wall_now=seen.wall_time,
            looks_complete=complete,
            settle_seconds=self._settle_seconds(entry.folder),
        )
        if not isinstance(decision, Ready):
            self._schedule(path, entry, decision.at)
            return
        # A sidecar or error record written by an earlier run (or by hand) may already cover it.
        found = self._probe.classify(path, signature, entry.folder.account)
        self.ledger.record_found(entry.folder, found)
        if found.state is not FileState.PENDING:
            self._untrack(path)
            return
        if self.accounts.hold(entry.folder.account_key, path):
            entry.phase = Phase.PAUSED
            return
        entry.phase = Phase.QUEUED
        self._ready.append(entry.folder.path, path)

    def _untrack(self, path: str) -> None:
        entry = self.tracked.pop(path, None)
        self.tracker.forget(path)
        if entry is not None:
            self.accounts.release(entry.folder.account_key, path)

    # ---- dispatch --------------------------------------------------------------------------------

    def due(self, now: float) -> list[UploadJob]:
        """Fire what is due and return the jobs to start now, within the concurrency limit."""
        self._fire_timers(now)
        jobs = self.unwritten.due(now, self.folder_for, self.generation)
        while self._ready and self.in_flight < self.concurrency:
            path = self._ready.popleft()
            entry = self.tracked.get(path)
            if entry is None or entry.phase is not Phase.QUEUED:
                continue
            if not self.accounts.admits(entry.folder.account_key, path):
                self.accounts.hold(entry.folder.account_key, path)
                entry.phase = Phase.PAUSED
                continue
            entry.phase = Phase.UPLOADING
            entry.recheck = False
            entry.attempts += 1
            self.in_flight += 1
            signature = self.tracker.signature(path)
            gone = self.gone.take(entry.folder.path, path, signature, now)
            jobs.append(
                UploadJob(
                    path,
                    entry.folder.account,
                    signature,
                    entry.attempts,
                    self.generation,
                    root=entry.folder.path,
                    done_dir=entry.folder.done_dir,
                    failed_dir=entry.folder.failed_dir,
                    kinds=entry.folder.media,
                    renamed_from=(gone.path, gone.record_id) if gone is not None else None,
                )
            )
        return jobs

    # ---- results ---------------------------------------------------------------------------------

    def _on_job_done(self, done: JobDone, now: float) -> None:
        path = done.job.path
        entry = self.tracked.get(path)
        recheck = entry is not None and entry.recheck and done.job.stored_sidecar is None
        self._on_result(done, now)
        if recheck and path not in self.tracked:
            self._track_now(path, now)  # a touch during the upload: the record may describe the old times

    def _on_result(self, done: JobDone, now: float) -> None:
        path = done.job.path
        if done.job.stored_sidecar is not None:
            self._on_stored_sidecar_done(done, now)
            return
        self.in_flight -= 1
        entry = self.tracked.get(path)
        if entry is None:
            return
        if entry.stale or (
            done.job.generation != self.generation and entry.folder.account != done.job.account
        ):
            # Uploaded for a mapping a reload replaced: whatever it wrote is judged again, afresh.
            entry.stale = False
            entry.attempts = 0
            entry.phase = Phase.SETTLING
            self._schedule(path, entry, now)
            log.info("%s: its folder's settings changed during the upload; checking it again", path)
            return
        outcome = done.outcome
        key = entry.folder.account_key
        if isinstance(outcome, FileChanged):
            log.info("%s: %s; waiting for it to settle again", path, outcome.reason)
            self.accounts.release(key, path)
            entry.phase = Phase.SETTLING
            self.tracker.note_write(path, now)
            self._schedule(path, entry, now + self._settle_seconds(entry.folder))
            return
        if isinstance(outcome, UploadSuccess):
            self._on_success(path, done, outcome, now)
            for resumed in self.accounts.on_success(key):
                held = self.tracked.get(resumed)
                if held is not None and held.phase is Phase.PAUSED:
                    held.phase = Phase.SETTLING
                    self._schedule(resumed, held, now)
            return
        if self.once and self._gives_up(path, entry, outcome):
            return
        if outcome.failure_class is FailureClass.TEMPORARY:
            entry.failures += 1
            if not outcome.local and self.accounts.on_temporary(key, path, outcome, now):
                entry.phase = Phase.PAUSED
                return
            delay = self.retry_policy.delay(entry.failures, outcome.retry_after)
            log.warning("%s: %s; retry %d in %.1f s", path, outcome.error, entry.failures + 1, delay,
                        extra=fields(file=path, account=entry.folder.account, event="retry"))  # fmt: skip
            entry.phase = Phase.RETRY_WAIT
            self._schedule(path, entry, now + delay)
        elif outcome.failure_class is FailureClass.PERMANENT:
            failed = fields(
                file=path, folder=entry.folder.path, account=entry.folder.account, event="failure"
            )
            if done.record_error:
                log.error("%s: %s; and its error record cannot be written: %s", path, outcome.error,
                          done.record_error, extra=failed)  # fmt: skip
            else:
                log.error("%s: %s; error record written, the file is retried when it changes", path,
                          outcome.error, extra=failed)  # fmt: skip
            if done.moved_to is not None:
                log.info("%s: moved with its error record to %s", path, done.moved_to)
                self.ledger.forget(path)
            elif done.signature is not None:
                self.ledger.mark_failed(path, done.signature, outcome.error, outcome.code)
            self._untrack(path)
        else:
            self.accounts.on_refused(key, path, outcome, now)
            entry.phase = Phase.PAUSED

    def _gives_up(self, path: str, entry: Tracked, outcome: UploadFailure) -> bool:
        """`scan` only: it reports a file that cannot be uploaded now instead of waiting for an outage."""
        if outcome.failure_class is FailureClass.PERMANENT:
            return False
        if outcome.failure_class is FailureClass.TEMPORARY and not self.once_policy.gives_up(
            entry.failures + 1
        ):
            return False
        hint = operator_hint(outcome.code if isinstance(outcome.code, int) else None)
        log.error("%s: %s; not uploaded by this scan%s", path, outcome.error, f" ({hint})" if hint else "",
                  extra=fields(file=path, account=entry.folder.account, event="failure"))  # fmt: skip
        self.gave_up[path] = outcome.error
        self._untrack(path)
        return True

    def _on_success(self, path: str, done: JobDone, outcome: UploadSuccess, now: float) -> None:
        assert done.signature is not None
        how = "reused the fileID of identical bytes" if done.reused else f"uploaded in {done.seconds:.2f} s"
        job = done.job
        if done.record_error is not None and done.sidecar is not None:
            log.error(
                "%s: %s (%s), but its sidecar cannot be written: %s; the fileID is kept and the "
                "sidecar written as soon as the folder allows",
                path,
                outcome.file_id,
                how,
                done.record_error,
                extra=fields(
                    file=path,
                    folder=job.root,
                    account=job.account,
                    file_id=outcome.file_id,
                    event="attention",
                ),
            )
            self.unwritten.keep(path, done.sidecar, done.signature, now)
            self.notices.append(
                (job.account_key, f"{path}: its sidecar cannot be written ({done.record_error}); the folder "
                 f"{job.root} refuses writes", job.root)
            )  # fmt: skip
            if self.once:
                self.gave_up[path] = f"uploaded as {outcome.file_id}, but the sidecar cannot be written"
        else:
            log.info("%s: %s → %s", path, how, outcome.file_id, extra=fields(
                file=path, folder=job.root, account=job.account, file_id=outcome.file_id, event="upload"))  # fmt: skip
            self.uploaded_count += 1
            if done.moved_to is not None:
                log.info("%s: moved with its sidecar to %s", path, done.moved_to)
                self.ledger.forget(path)
            else:
                self.ledger.mark_done(path, done.signature, job.account or "", done.record_id)
        self.ledger.failed.pop(path)
        self._untrack(path)

    # ---- sidecars waiting for their folder -------------------------------------------------------

    def restore_unwritten(
        self, entries: Iterable[tuple[str, StoredSidecar]], now: float, configured: Iterable[Folder] = ()
    ) -> None:
        """Sidecars an earlier run could not write: they are written without uploading again.

        Those of a `configured` folder another agent holds now stay saved for a later run; those of no
        folder at all are dropped.
        """
        elsewhere = tuple(configured)
        for path, stored in entries:
            folder = self.folder_for(path)
            if folder is None:
                if folder_of(path, elsewhere) is None:
                    self.unwritten.forget_unsaved(path)
                continue
            self.unwritten.restore(path, stored, now)
            self.ledger.add_known_upload(folder, stored.signature.size, stored.sidecar)

    def _on_stored_sidecar_done(self, done: JobDone, now: float) -> None:
        path = done.job.path
        if isinstance(done.outcome, FileChanged):
            # The file changed or vanished: it is uploaded again anyway, if it is still there.
            if self.unwritten.obsolete(path) and done.signature is not None:
                self._track_now(path, now)
        elif done.record_error is not None:
            self.unwritten.refused_again(path, now)
        else:
            stored = self.unwritten.written(path)
            if stored is not None:
                file_id = str(stored.sidecar.get("fileID", ""))
                log.info("%s: sidecar written at last → %s", path, file_id, extra=fields(
                    file=path, folder=done.job.root, account=done.job.account, file_id=file_id,
                    event="upload"))  # fmt: skip
                self.uploaded_count += 1
                if done.moved_to is None:
                    self.ledger.mark_done(path, stored.signature, done.job.account or "", done.record_id)

    # ---- reload ----------------------------------------------------------------------------------

    def reconfigure(
        self, folders: Iterable[Folder], *, settle_seconds: float, concurrency: int, now: float
    ) -> FolderChanges:
        """Apply a reloaded config. Messages made under the old one are re-resolved from now on."""
        new = tuple(folders)
        old_by_path = {f.path: f for f in self.folders}
        new_by_path = {f.path: f for f in new}
        removed = tuple(f for p, f in old_by_path.items() if new_by_path.get(p) != f)
        added = tuple(f for p, f in new_by_path.items() if old_by_path.get(p) != f)
        self.generation += 1
        self.folders = new
        self.concurrency = concurrency
        self.tracker.settle_seconds = settle_seconds
        self.tracker.confirm_seconds = min(DEFAULT_CONFIRM_SECONDS, settle_seconds)
        for folder in removed:
            self.ledger.forget_folder(folder.path)
            for path in [p for p in self.unwritten if is_inside(p, folder.path)]:
                if self.folder_for(path) is None:
                    self.unwritten.discard(path)
        for path, entry in list(self.tracked.items()):
            now_in = self.folder_for(path)
            if now_in is None:
                if entry.phase is Phase.UPLOADING:
                    entry.stale = True  # its result is dropped when it arrives
                self._untrack(path)
            elif now_in != entry.folder:
                self._track_now(path, now)
        self.accounts.probe_all_now(now)
        return FolderChanges(removed, added)
