"""The scheduler: every decision about every file, as a plain object with no I/O of its own.

The agent feeds it messages with the monotonic time (`handle`), asks it for the uploads that may
start now (`due`) and for when to ask again (`next_deadline`), and applies the index writes it decided
(`take_index_writes`). The disk is reached through the ports (`watcher.core.ports`); a file's phases
are `watcher.core.phases`, upload results `watcher.core.results` (`docs/architecture.md`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, assert_never

from watcher.core import results
from watcher.core.accounts import AccountGates
from watcher.core.backlog import SidecarBacklog
from watcher.core.fair import FairQueue, FairTimers
from watcher.core.folders import Folder, FolderChanges, folder_containing, is_inside
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
from watcher.core.phases import Phase, Tracked
from watcher.core.ports import DoneIndex, FileProbe, IndexWrite, SidecarStore, UnwrittenSidecar
from watcher.core.renames import RecentlyGone
from watcher.core.retry import RetryPolicy
from watcher.core.settle import DEFAULT_CONFIRM_SECONDS, Ready, SettleTracker
from watcher.core.timings import Timings
from watcher.log_fields import say

log = logging.getLogger("watcher")

# A loop turn looks at no more files than this: 100,000 files found at once would otherwise hold it
# for tens of seconds, with results untaken, workers idle and the watchdog silent. What is left stays
# due for the next turn; the looks go to the folders in turn (`watcher.core.fair`).
LOOKS_PER_TURN = 64
# Timers of files no longer waiting (untracked, or rescheduled) are dropped once they outnumber the
# tracked files by this many: a churn of files made and deleted leaves no timer behind for long.
STALE_TIMERS = 4096


@dataclass(frozen=True)
class Summary:
    folders: int
    uploading: int
    pending: int
    failed: int
    uploaded: int
    paused: str  # "" when no account is held


class Scheduler:
    def __init__(
        self,
        folders: Iterable[Folder],
        *,
        settle_seconds: float,
        concurrency: int,
        probe: FileProbe,
        store: SidecarStore,
        index: DoneIndex,
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
        self.ledger = Ledger(index, trusts)
        self.gone = RecentlyGone()  # done files renamed away, for their old sidecars
        self.tracked: dict[str, Tracked] = {}
        self.backlog = SidecarBacklog(store, self.timings.sidecar_retry)
        self.gave_up: dict[str, str] = {}  # `scan` only: files it stopped retrying, and why
        # (account, message, folder) for the on_attention hook, taken by the agent (`take_notices`).
        self.notices: list[tuple[str, str, str | None]] = []
        self.uploaded_count = 0
        self.in_flight = 0

        self._timers = FairTimers()
        self._ready = FairQueue()
        self._initial_scans_left = len(self.folders)
        self.ready = self._initial_scans_left == 0
        self._ready_untold = False

    def begin(self, folders: Iterable[Folder]) -> None:
        """The folders to work on at start (those this agent holds); READY waits for their first scans."""
        self.folders = tuple(folders)
        self._initial_scans_left = len(self.folders)
        self.ready = self._initial_scans_left == 0

    # ---- the questions the shell asks ------------------------------------------------------------

    def folder_for(self, path: str) -> Folder | None:
        return folder_containing(path, self.folders)

    def next_deadline(self) -> float:
        return min(self.backlog.next_retry, self.accounts.next_deadline(), self._timers.next_deadline())

    def idle(self) -> bool:
        """Nothing left to do (`scan` exits); sidecars waiting for a read-only folder do not count."""
        return not self.tracked and self.in_flight == 0 and not self.backlog.writing

    def summary(self) -> Summary:
        return Summary(
            folders=len(self.folders),
            uploading=self.in_flight,
            pending=max(0, len(self.tracked) - self.in_flight) + len(self.ledger.empty),
            failed=len(self.ledger.failed),
            uploaded=self.uploaded_count,
            paused=self.accounts.describe() if self.accounts.paused else "",
        )

    def take_index_writes(self) -> list[IndexWrite]:
        """The index changes decided since the last call, in order: the agent applies them after each
        call that may decide some (`handle`, `due`, `reconfigure`, `restore_unwritten`)."""
        return self.ledger.take_writes()

    def take_notices(self) -> list[tuple[str, str, str | None]]:
        """What the operator should hear of (an account paused or resumed, a folder refusing writes),
        once each: (account, message, folder)."""
        notices = [(key, message, None) for key, message in self.accounts.notices] + self.notices
        self.accounts.notices.clear()
        self.notices = []
        return notices

    def counts_by_folder(self) -> dict[str, tuple[int, int]]:
        """Folder path → (pending, failed), for the metrics; failed counts those moved to failed_dir."""
        counts = {f.path: [0, self.ledger.moved_failed.get(f.path, 0)] for f in self.folders}
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
                results.on_job_done(self, message, now)
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
            self.backlog.discard(path)
            entry = self.tracked.get(path)
            if entry is not None and entry.phase is not Phase.UPLOADING:
                self.untrack(path)
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
            wait = self.settle_seconds(entry.folder)
        if entry.phase is Phase.SETTLING and (entry.due <= now or entry.due > now + wait):
            self.schedule(path, entry, now + wait)
        elif entry.phase is Phase.UPLOADING and event.kind is EventKind.ATTRIB:
            entry.recheck = True
        elif entry.phase in (Phase.RETRY_WAIT, Phase.PAUSED) and event.kind is EventKind.WRITE:
            # The file changed: a new version gets a fresh start (its account may still be held).
            entry.failures = 0
            if entry.phase is Phase.RETRY_WAIT:
                entry.move(Phase.SETTLING)
                self.schedule(path, entry, now + wait)

    def _on_scan_batch(self, batch: ScanBatch, now: float) -> None:
        for found in batch.files:
            folder = self._current_folder(batch.folder, batch.generation, found.path)
            if folder is None:
                continue
            if batch.generation != self.generation and folder.account != batch.folder.account:
                # Judged against another account's sidecars: look at it afresh.
                self.track_now(found.path, now)
            elif found.state is FileState.PENDING:
                self.ledger.record_found(folder, found)  # a sidecar in doubt may lend its fileID
                if found.path not in self.backlog:
                    self.track_now(found.path, now)
            elif found.path not in self.tracked:
                self.ledger.record_found(folder, found)

    def _on_scan_finished(self, message: ScanFinished) -> None:
        self.ledger.reconcile(message)
        if message.initial and not self.ready:
            self._initial_scans_left -= 1
            if self._initial_scans_left <= 0:
                self.ready = True
                self._ready_untold = True

    def tell_ready(self) -> None:
        """Log the end of the start-up scans, once, after the agent applied their index writes."""
        if self._ready_untold:
            self._ready_untold = False
            log.info("ready: %s", self.ledger.ready_summary(self.folders, pending=len(self.tracked)))

    # ---- settling --------------------------------------------------------------------------------

    def schedule(self, path: str, entry: Tracked, at: float) -> None:
        entry.due = at
        self._timers.push(entry.folder.path, at, path)
        if len(self._timers) > 2 * len(self.tracked) + STALE_TIMERS:
            self._timers.compact(self._waits_for)

    def _waits_for(self, at: float, path: str) -> bool:
        """Whether the timer (at, path) is the one a tracked file waits for."""
        entry = self.tracked.get(path)
        return entry is not None and entry.due == at and entry.phase in (Phase.SETTLING, Phase.RETRY_WAIT)

    def track_now(self, path: str, now: float) -> None:
        folder = self.folder_for(path)
        if folder is None:
            return
        self.ledger.empty.discard(path)
        entry = self.tracked.get(path)
        if entry is None:
            entry = self.tracked[path] = Tracked(folder)
            self.schedule(path, entry, now)
        elif entry.folder != folder:
            # The folder's mapping changed under it (a reload): it starts over under the new one.
            self.accounts.release(entry.folder.account_key, path)
            entry.folder = folder
            entry.failures = 0
            if entry.phase is Phase.UPLOADING:
                entry.stale = True
            else:
                entry.move(Phase.SETTLING)
                self.schedule(path, entry, now)

    def _fire_timers(self, now: float) -> None:
        looks = 0
        for at, path in self._timers.due(now):
            entry = self.tracked.get(path)
            if entry is None or entry.due != at:
                continue  # superseded by a later schedule
            if entry.phase in (Phase.SETTLING, Phase.RETRY_WAIT):
                entry.move(Phase.SETTLING)
                self._settle_check(path, entry, now)
                looks += 1
                if looks >= LOOKS_PER_TURN:
                    break
        for key, probe in self.accounts.due_probes(now):
            entry = self.tracked.get(probe)
            if entry is None:
                self.accounts.release(key, probe)
                continue
            entry.move(Phase.QUEUED)
            self._ready.appendleft(entry.folder.path, probe)

    def settle_seconds(self, folder: Folder) -> float:
        return folder.settle_seconds or self.tracker.settle_seconds

    def _settle_check(self, path: str, entry: Tracked, now: float) -> None:
        seen = self._probe.observe(path) if entry.folder.admits(path) else None
        if seen is None:
            self.untrack(path)
            return
        signature = seen.signature
        if self.ledger.settled(path, signature, self._probe):
            self.untrack(path)
            return
        stored = self.backlog.get(path)
        if stored is not None:
            if stored.signature == signature:
                self.untrack(path)  # uploaded already; only its sidecar is waiting for the folder
                return
            self.backlog.discard(path)
        problem = name_problem(path.rpartition("/")[2])
        if problem is not None:
            # No record can exist beside it, so the log says it, once per version of the file.
            say(log.error, "%s: %s", path, problem, file=path, folder=entry.folder.path, event="failure")
            self.ledger.mark_failed(path, signature, problem, NAME_TOO_LONG)
            self.untrack(path)
            return
        if signature.size == 0:
            # A writer that has not started: its first write (an event) or the next rescan wakes it.
            # Re-checking every settle time would cost a stat per empty file per second, forever.
            # Not a failure (no error record, as `run` writes none): `scan` says it and exits 0 for it.
            self.untrack(path)
            self.ledger.empty.add(path)
            if self.once:
                why = "%s: empty file: nothing to upload; it is uploaded once something is written to it"
                say(log.warning, why, path, file=path, folder=entry.folder.path)
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
            settle_seconds=self.settle_seconds(entry.folder),
        )
        if not isinstance(decision, Ready):
            log.debug("%s: not settled yet; looked at again in %.1f s", path, decision.at - now)
            self.schedule(path, entry, decision.at)
            return
        # A sidecar or error record written by an earlier run (or by hand) may already cover it.
        found = self._probe.classify(path, signature, entry.folder.account)
        self.ledger.record_found(entry.folder, found)
        if found.state is not FileState.PENDING:
            log.debug("%s: settled, and its record says %s: nothing to upload", path, found.state.value)
            self.untrack(path)
            return
        if self.accounts.hold(entry.folder.account_key, path):
            entry.move(Phase.PAUSED)
            return
        log.debug("%s: settled (%d bytes); queued for upload", path, signature.size)
        entry.move(Phase.QUEUED)
        self._ready.append(entry.folder.path, path)

    def untrack(self, path: str) -> None:
        entry = self.tracked.pop(path, None)
        self.tracker.forget(path)
        if entry is not None:
            self.accounts.release(entry.folder.account_key, path)

    # ---- dispatch --------------------------------------------------------------------------------

    def due(self, now: float) -> list[UploadJob]:
        """Fire what is due and return the jobs to start now, within the concurrency limit."""
        self._fire_timers(now)
        jobs = self.backlog.due(now, self.folder_for, self.generation)
        while self._ready and self.in_flight < self.concurrency:
            path = self._ready.popleft()
            entry = self.tracked.get(path)
            if entry is None or entry.phase is not Phase.QUEUED:
                continue
            if not self.accounts.admits(entry.folder.account_key, path):
                self.accounts.hold(entry.folder.account_key, path)
                entry.move(Phase.PAUSED)
                continue
            entry.move(Phase.UPLOADING)
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

    # ---- sidecars waiting for their folder -------------------------------------------------------

    def restore_unwritten(
        self, entries: Iterable[tuple[str, UnwrittenSidecar]], now: float, configured: Iterable[Folder] = ()
    ) -> None:
        """Sidecars an earlier run could not write: they are written without uploading again.

        Those of a `configured` folder another agent holds now stay saved for a later run; those of no
        folder at all are dropped.
        """
        for folder, stored in self.backlog.restore(entries, now, self.folder_for, tuple(configured)):
            self.ledger.add_known_upload(folder, stored.signature.size, stored.sidecar)

    # ---- reload ----------------------------------------------------------------------------------

    def reconfigure(
        self, folders: Iterable[Folder], *, settle_seconds: float, concurrency: int, now: float
    ) -> FolderChanges:
        """Apply a reloaded config. Messages made under the old one are re-resolved from now on."""
        new = tuple(folders)
        changes = FolderChanges.between(self.folders, new)
        self.generation += 1
        self.folders = new
        self.concurrency = concurrency
        self.tracker.settle_seconds = settle_seconds
        self.tracker.confirm_seconds = min(DEFAULT_CONFIRM_SECONDS, settle_seconds)
        for folder in changes.removed:
            self.ledger.forget_folder(folder.path)
            for path in [p for p in self.backlog if is_inside(p, folder.path)]:
                if self.folder_for(path) is None:
                    self.backlog.discard(path)
        for path, entry in list(self.tracked.items()):
            now_in = self.folder_for(path)
            if now_in is None:
                self.untrack(path)  # a result still to come finds no entry and is dropped
            elif now_in != entry.folder:
                self.track_now(path, now)
        self.accounts.probe_all_now(now)
        return changes
