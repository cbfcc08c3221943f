"""The agent: wires observers, the scanner, the scheduler and the upload workers together.

Threads and who owns what:
- the scheduler (the thread that calls `run`) owns every piece of state below; all other threads only
  post messages to its inbox;
- one watchdog observer per folder posts `PathEvent`s;
- the scanner thread walks folders (at start, every `rescan_seconds`, when a subfolder appears) and
  posts `ScanBatch`es;
- `concurrency` worker threads each take one `UploadJob` at a time and post `JobDone`.

A file waiting for its settle time, its next retry or its account's resumption is a small entry in a
dict plus a timer in a heap: it holds no thread, no open file and none of its bytes.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from watcher.accounts import AccountGates
from watcher.config import Config, ConfigError, Folder
from watcher.dedupe import DedupeIndex, KnownUpload
from watcher.media import is_regular_file_mode, read_head_and_tail
from watcher.media import looks_complete as image_looks_complete
from watcher.outcome import (
    FailureClass,
    FileChanged,
    UploadFailure,
    UploadOutcome,
    UploadSuccess,
    operator_hint,
)
from watcher.pathindex import PathIndex
from watcher.retry import RetryPolicy
from watcher.scanner import ScanBatch, ScanFinished, Scanner
from watcher.scanning import FileState, FoundFile, classify, failure_still_holds, signature_of
from watcher.settle import DEFAULT_CONFIRM_SECONDS, FileSignature, Ready, SettleTracker
from watcher.sidecar import write_sidecar_atomically
from watcher.state import UnwrittenSidecars
from watcher.systemd import Notifier
from watcher.uploader import UploadJob, record_failure, record_success, sidecar_for, upload_one
from watcher.watching import EventKind, FolderWatch, PathEvent, watch_for_overflows

log = logging.getLogger("watcher")

STATUS_INTERVAL = 2.0
SIDECAR_RETRY_SECONDS = 15.0
ROOT_RECHECK_SECONDS = 5.0
STOP_GRACE_SECONDS = 5.0
OVERFLOW_RESCAN_DELAY = 0.5


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


@dataclass(frozen=True, slots=True)
class FailedFile:
    signature: FileSignature
    error: str
    code: object


@dataclass(frozen=True)
class JobDone:
    job: UploadJob
    outcome: UploadOutcome
    signature: FileSignature | None
    reused: bool
    seconds: float
    sidecar: dict[str, Any] | None = None
    record_error: str | None = None  # the sidecar or error record could not be written


class Control(StrEnum):
    RELOAD = "reload"
    STOP = "stop"
    RESCAN = "rescan"  # inotify lost events: rescan every folder soon


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


class Agent:
    """Runs until `request_stop`; `once=True` makes it the `scan` command (no observers, exit when idle)."""

    def __init__(
        self,
        config: Config,
        client_factory: Callable[[Config], Any],
        *,
        once: bool = False,
        notifier: Notifier | None = None,
        config_loader: Callable[[], Config] | None = None,
        retry_policy: RetryPolicy | None = None,
        once_max_failures: int = 5,
        state_dir: Path | None = None,
    ) -> None:
        self.config = config
        self._client_factory = client_factory
        self.client = client_factory(config)
        self.once = once
        self.notifier = notifier or Notifier({})
        self._config_loader = config_loader
        self.retry_policy = retry_policy or RetryPolicy()
        self._once_max_failures = once_max_failures

        self.tracker = SettleTracker(config.settings.settle_seconds)
        self.tracked: dict[str, Tracked] = {}
        self.done: PathIndex[FileSignature] = PathIndex()
        self.failed: PathIndex[FailedFile] = PathIndex()
        self.gave_up: dict[str, str] = {}  # `scan` only: temporary failures it stopped retrying
        self.unwritten = UnwrittenSidecars(state_dir)
        self.accounts = AccountGates(self.retry_policy)
        self.dedupe = DedupeIndex()
        self.changes = InFlightChanges()

        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._jobs: queue.SimpleQueue[UploadJob | None] = queue.SimpleQueue()
        # `done.get` runs on the scanner's thread: a lookup in plain dicts, safe under the GIL.
        self.scanner = Scanner(self.post, self.done.get)
        self._timers: list[tuple[float, int, str]] = []
        self._timer_seq = 0
        self._ready: deque[str] = deque()
        self._in_flight = 0
        self._workers: list[threading.Thread] = []
        self._watches: dict[str, FolderWatch] = {}
        self._initial_scans_left = 0
        self._is_ready = False
        self._stopping = False
        self._next_rescan = 0.0
        self._next_status = 0.0
        self._last_status = ""
        self._lost_roots: set[str] = set()
        self._stop_overflow_alarm: Callable[[], None] = lambda: None
        self._next_watchdog = 0.0
        self._next_sidecar_retry = float("inf")
        self._next_root_check = float("inf")
        self.uploaded_count = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run the scheduler on the calling thread until stopped (or, with once=True, until idle)."""
        self._restore_unwritten()
        self.scanner.start()
        self._ensure_workers(self.config.settings.concurrency)
        if not self.once:
            self._stop_overflow_alarm = watch_for_overflows(lambda: self.post(Control.RESCAN))
            for folder in self.config.folders:
                self._start_watch(folder)
        self._initial_scans_left = len(self.config.folders)
        for folder in self.config.folders:
            self.scanner.scan(folder, initial=True)
        self._next_rescan = time.monotonic() + self.config.settings.rescan_seconds
        try:
            self._loop()
        finally:
            self._shutdown()
        if self.once:
            return 1 if (self.failed or self.gave_up) else 0
        return 0

    def _restore_unwritten(self) -> None:
        self.unwritten.load()
        for path, entry in self.unwritten.items():
            folder = self._folder_of(path)
            if folder is None:
                self.unwritten.discard(path)
                continue
            # Identical bytes anywhere in the account may reuse it too, without an upload.
            self.dedupe.add(
                folder.account_key,
                entry.signature.size,
                str(entry.sidecar.get("sha256", "")),
                KnownUpload(str(entry.sidecar.get("fileID", "")), str(entry.sidecar.get("ossPath", ""))),
            )
        if self.unwritten:
            self._next_sidecar_retry = time.monotonic()

    def post(self, message: Any) -> None:
        """Thread-safe (and signal-handler-safe): hand a message to the scheduler."""
        self._inbox.put(message)

    def request_stop(self) -> None:
        self.post(Control.STOP)

    def request_reload(self) -> None:
        self.post(Control.RELOAD)

    def _ensure_workers(self, count: int) -> None:
        while len(self._workers) < count:
            worker = threading.Thread(
                target=self._work_loop, name=f"upload-{len(self._workers)}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def _start_watch(self, folder: Folder) -> None:
        watch = FolderWatch(folder, self._on_path_event)
        try:
            watch.start()
        except OSError as exc:
            log.error(
                "%s: cannot watch this folder: %s; it is rescanned every %.0f s instead",
                folder.path,
                exc.strerror,
                self.config.settings.rescan_seconds,
            )
            return
        self._watches[folder.path] = watch
        log.info(
            "watching %s (%s%s, account %s)",
            folder.path,
            watch.mode,
            ", recursive" if folder.recursive else "",
            folder.account or "default",
        )

    def _on_path_event(self, event: PathEvent) -> None:
        if event.kind is EventKind.WRITE or event.kind is EventKind.DELETED:
            self.changes.bump(event.path)
        self._inbox.put(event)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self._stop_overflow_alarm()
        deadline = time.monotonic() + (0 if self.once else STOP_GRACE_SECONDS)
        for watch in self._watches.values():
            watch.stop(join_timeout=None)
        self.scanner.stop()
        for _ in self._workers:
            self._jobs.put(None)
        for watch in self._watches.values():
            watch.join(max(0.0, deadline - time.monotonic()))
        # Uploads in flight get a short grace to finish and write their sidecars; one cut short
        # leaves no sidecar and is redone at the next start.
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if self._in_flight and any(w.is_alive() for w in self._workers):
            log.info("stopping with uploads in flight; they are redone at the next start")
        self.client.close()

    # ---- the scheduler loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            timeout = max(0.0, self._next_deadline() - now)
            try:
                message = self._inbox.get(timeout=min(timeout, 60.0))
            except queue.Empty:
                message = None
            if message is not None:
                self._handle(message)
                # Drain what else is waiting before acting on timers: bursts coalesce.
                for _ in range(10_000):
                    try:
                        self._handle(self._inbox.get_nowait())
                    except queue.Empty:
                        break
            self._fire_timers(time.monotonic())
            self._dispatch()
            self._housekeeping(time.monotonic())
            if self.once and self._is_ready and self._idle():
                break

    def _next_deadline(self) -> float:
        deadline = min(self._next_sidecar_retry, self._next_root_check)
        if self._timers:
            deadline = min(deadline, self._timers[0][0])
        if not self.once:
            deadline = min(deadline, self._next_rescan)
        if self.notifier.watchdog_interval:
            deadline = min(deadline, self._next_watchdog)
        deadline = min(deadline, self.accounts.next_deadline())
        if self._is_ready and self.status_line() != self._last_status:
            deadline = min(deadline, self._next_status)  # a throttled STATUS= still goes out
        return deadline

    def _idle(self) -> bool:
        # Sidecars waiting for a read-only folder do not hold `scan` up: they stay in the state file.
        return not self.tracked and self._in_flight == 0

    def _handle(self, message: Any) -> None:
        if isinstance(message, PathEvent):
            self._on_event(message)
        elif isinstance(message, JobDone):
            self._on_job_done(message)
        elif isinstance(message, ScanBatch):
            self._on_scan_batch(message)
        elif isinstance(message, ScanFinished):
            self._on_scan_finished(message)
        elif message is Control.STOP:
            log.info("stopping")
            self._stopping = True
        elif message is Control.RELOAD:
            self._reload()
        elif message is Control.RESCAN:
            # Half a second lets the burst that overflowed the queue land before the walk.
            self._next_rescan = min(self._next_rescan, time.monotonic() + OVERFLOW_RESCAN_DELAY)

    # ---- timers ----------------------------------------------------------------------------------

    def _schedule(self, path: str, entry: Tracked, at: float) -> None:
        entry.due = at
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, path))

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            at, _, path = heapq.heappop(self._timers)
            entry = self.tracked.get(path)
            if entry is None or entry.due != at:
                continue  # superseded by a later schedule
            if entry.phase in (Phase.SETTLING, Phase.RETRY_WAIT):
                entry.phase = Phase.SETTLING
                self._settle_check(path, entry, now)
        for key, probe in self.accounts.due_probes(now):
            entry = self.tracked.get(probe)
            if entry is None:
                self.accounts.release(key, probe)
                continue
            entry.phase = Phase.QUEUED
            self._ready.appendleft(probe)

    def _settle_check(self, path: str, entry: Tracked, now: float) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            self._untrack(path)
            return
        if not is_regular_file_mode(st.st_mode):
            self._untrack(path)
            return
        signature = signature_of(st)
        if self.done.get(path) == signature or self._still_failed(path, signature):
            self._untrack(path)
            return
        unwritten = self.unwritten.get(path)
        if unwritten is not None:
            if unwritten.signature == signature:
                self._untrack(path)  # uploaded already; only its sidecar is waiting for the folder
                return
            self.unwritten.discard(path)
        complete = False
        if signature.size > 0 and self.tracker.is_finished(path):
            try:
                head, tail, _ = read_head_and_tail(path)
                complete = image_looks_complete(head, tail, signature.size)
            except OSError:
                complete = False
        decision = self.tracker.check(path, signature, now=now, wall_now=time.time(), looks_complete=complete)
        if not isinstance(decision, Ready):
            self._schedule(path, entry, decision.at)
            return
        # A sidecar or error record written by an earlier run (or by hand) may already cover it.
        found = classify(path, signature, entry.folder.account)
        if found.state is not FileState.PENDING:
            self._record_found(entry.folder, found)
            self._untrack(path)
            return
        if self.accounts.hold(entry.folder.account_key, path):
            entry.phase = Phase.PAUSED
            return
        entry.phase = Phase.QUEUED
        self._ready.append(path)

    def _still_failed(self, path: str, signature: FileSignature) -> bool:
        """A permanent failure holds until the file changes, or, for an unreadable file, becomes readable."""
        failed = self.failed.get(path)
        if failed is None or failed.signature != signature:
            return False
        return failure_still_holds(path, failed.code)

    # ---- events ----------------------------------------------------------------------------------

    def _on_event(self, event: PathEvent) -> None:
        now = time.monotonic()
        if event.kind is EventKind.DIR_APPEARED:
            self.scanner.scan(event.folder, event.path)
            return
        if event.kind is EventKind.ROOT_GONE:
            if event.folder.path not in self._lost_roots:
                log.warning(
                    "%s: the watched folder was removed or moved away; waiting for it to come back",
                    event.folder.path,
                )
            self._lost_roots.add(event.folder.path)
            self._next_root_check = min(self._next_root_check, now + ROOT_RECHECK_SECONDS)
            return
        path = event.path
        if event.kind is EventKind.DELETED:
            self.done.pop(path)
            self.failed.pop(path)
            self.unwritten.discard(path)
            entry = self.tracked.get(path)
            if entry is not None and entry.phase is not Phase.UPLOADING:
                self._untrack(path)
            return
        # A removed sidecar is written again (dedupe avoids a second upload); a removed error record is
        # the operator asking for another try. Other removals of records concern nothing we track.
        if (
            event.kind is EventKind.RECORD_DELETED
            and self.done.pop(path) is None
            and self.failed.pop(path) is None
        ):
            return
        entry = self.tracked.get(path)
        if entry is None:
            entry = self.tracked[path] = Tracked(event.folder)
        if event.kind is EventKind.FINISHED:
            # Stat at once: the confirmation window then runs from the writer's close, not after it.
            self.tracker.note_finished(path, now)
            wait = 0.0
        else:
            self.tracker.note_write(path, now)
            wait = self.tracker.settle_seconds
        if entry.phase is Phase.SETTLING and (entry.due <= now or entry.due > now + wait):
            self._schedule(path, entry, now + wait)
        elif entry.phase in (Phase.RETRY_WAIT, Phase.PAUSED) and event.kind is not EventKind.RECORD_DELETED:
            # The file changed: a new version gets a fresh start (its account may still be paused).
            entry.failures = 0
            if entry.phase is Phase.RETRY_WAIT:
                entry.phase = Phase.SETTLING
                self._schedule(path, entry, now + wait)

    def _untrack(self, path: str) -> None:
        entry = self.tracked.pop(path, None)
        self.tracker.forget(path)
        if entry is not None:
            self.accounts.release(entry.folder.account_key, path)

    # ---- scanning --------------------------------------------------------------------------------

    def _on_scan_batch(self, message: ScanBatch) -> None:
        self.scanner.batch_taken()
        if message.folder.path not in {f.path for f in self.config.folders}:
            return  # removed by a reload while it was being scanned
        now = time.monotonic()
        for found in message.files:
            if found.state is FileState.PENDING:
                if found.path not in self.tracked and found.path not in self.unwritten:
                    entry = self.tracked[found.path] = Tracked(message.folder)
                    self._schedule(found.path, entry, now)
            elif found.path not in self.tracked:
                self._record_found(message.folder, found)

    def _record_found(self, folder: Folder, found: FoundFile) -> None:
        if found.state is FileState.DONE:
            self.done[found.path] = found.signature
            self.failed.pop(found.path)
            record = found.record
            if record is not None:
                self.dedupe.add(
                    folder.account_key,
                    found.signature.size,
                    str(record.get("sha256", "")),
                    KnownUpload(str(record["fileID"]), str(record.get("ossPath", ""))),
                )
        elif found.state is FileState.FAILED:
            record = found.record or {}
            self.failed[found.path] = FailedFile(
                found.signature, str(record.get("error", "")), record.get("code")
            )

    def _on_scan_finished(self, message: ScanFinished) -> None:
        # Forget what vanished without an event (inotify overflow, network filesystems).
        for table in (self.done, self.failed):
            for directory, names in message.listings.items():
                table.keep_only(directory, names)
            if message.folder.recursive:
                table.forget_under(message.root, except_dirs=message.listings)
        if message.initial:
            self._initial_scans_left -= 1
            if self._initial_scans_left == 0 and not self._is_ready:
                self._is_ready = True
                log.info(
                    "ready: %d folders, %d files already uploaded, %d pending, %d failed",
                    len(self.config.folders),
                    len(self.done),
                    len(self.tracked),
                    len(self.failed),
                )
                self._send_ready()

    # ---- uploads ---------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        limit = self.config.settings.concurrency
        while self._ready and self._in_flight < limit and not self._stopping:
            path = self._ready.popleft()
            entry = self.tracked.get(path)
            if entry is None or entry.phase is not Phase.QUEUED:
                continue
            if not self.accounts.admits(entry.folder.account_key, path):
                self.accounts.hold(entry.folder.account_key, path)
                entry.phase = Phase.PAUSED
                continue
            signature = self.tracker.signature(path)
            entry.phase = Phase.UPLOADING
            entry.attempts += 1
            self._in_flight += 1
            self.changes.begin(path)
            self._jobs.put(UploadJob(path, entry.folder.account, signature, entry.attempts))

    def _work_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            started = time.monotonic()
            try:
                self.post(self._upload(job, started))
            except Exception as exc:  # a bug must not lose the file: report it as temporary
                log.exception("unexpected error while uploading %s", job.path)
                failure = UploadFailure(FailureClass.TEMPORARY, f"internal error: {exc}", "internal")
                self.post(JobDone(job, failure, None, False, time.monotonic() - started))

    def _upload(self, job: UploadJob, started: float) -> JobDone:
        outcome, signature, reused = upload_one(self.client, job, self.dedupe)
        if self.changes.end(job.path) and not isinstance(outcome, FileChanged):
            outcome = FileChanged("the file was written to while it was uploaded")
        seconds = time.monotonic() - started
        if signature is None:
            return JobDone(job, outcome, signature, reused, seconds)
        sidecar = sidecar_for(job, outcome, signature) if isinstance(outcome, UploadSuccess) else None
        try:
            if sidecar is not None:
                record_success(job, sidecar)
            elif isinstance(outcome, UploadFailure) and outcome.failure_class is FailureClass.PERMANENT:
                record_failure(job, outcome, signature)
        except OSError as exc:
            return JobDone(
                job, outcome, signature, reused, seconds, sidecar, record_error=exc.strerror or str(exc)
            )
        return JobDone(job, outcome, signature, reused, seconds, sidecar)

    def _on_job_done(self, done: JobDone) -> None:
        self._in_flight -= 1
        path = done.job.path
        entry = self.tracked.get(path)
        if entry is None:
            return
        now = time.monotonic()
        outcome = done.outcome
        key = entry.folder.account_key
        if isinstance(outcome, FileChanged):
            log.info("%s: %s; waiting for it to settle again", path, outcome.reason)
            self.accounts.release(key, path)
            entry.phase = Phase.SETTLING
            self.tracker.note_write(path, now)
            self._schedule(path, entry, now + self.tracker.settle_seconds)
            return
        if isinstance(outcome, UploadSuccess):
            self._on_success(path, entry, done, outcome)
            for resumed in self.accounts.on_success(key):
                held = self.tracked.get(resumed)
                if held is not None and held.phase is Phase.PAUSED:
                    held.phase = Phase.SETTLING
                    self._schedule(resumed, held, now)
            return
        assert isinstance(outcome, UploadFailure)
        if self.once and self._gives_up(path, entry, outcome):
            return
        if outcome.failure_class is FailureClass.TEMPORARY:
            entry.failures += 1
            if not outcome.local and self.accounts.on_temporary(key, path, outcome, now):
                entry.phase = Phase.PAUSED
                return
            delay = self.retry_policy.delay(entry.failures, outcome.retry_after)
            log.warning("%s: %s; retry %d in %.1f s", path, outcome.error, entry.failures + 1, delay)
            entry.phase = Phase.RETRY_WAIT
            self._schedule(path, entry, now + delay)
        elif outcome.failure_class is FailureClass.PERMANENT:
            if done.record_error:
                log.error("%s: %s; and its error record cannot be written: %s", path, outcome.error,
                          done.record_error)  # fmt: skip
            else:
                log.error("%s: %s; error record written, the file is retried when it changes", path,
                          outcome.error)  # fmt: skip
            if done.signature is not None:
                self.failed[path] = FailedFile(done.signature, outcome.error, outcome.code)
            self._untrack(path)
        else:
            self.accounts.on_refused(key, path, outcome, now)
            entry.phase = Phase.PAUSED

    def _gives_up(self, path: str, entry: Tracked, outcome: UploadFailure) -> bool:
        """`scan` only: it reports a file that cannot be uploaded now instead of waiting for an outage."""
        if outcome.failure_class is FailureClass.PERMANENT:
            return False
        if outcome.failure_class is FailureClass.TEMPORARY and entry.failures + 1 < self._once_max_failures:
            return False
        hint = operator_hint(outcome.code if isinstance(outcome.code, int) else None)
        log.error("%s: %s; not uploaded by this scan%s", path, outcome.error, f" ({hint})" if hint else "")
        self.gave_up[path] = outcome.error
        self._untrack(path)
        return True

    def _on_success(self, path: str, entry: Tracked, done: JobDone, outcome: UploadSuccess) -> None:
        assert done.signature is not None
        how = "reused the fileID of identical bytes" if done.reused else f"uploaded in {done.seconds:.2f} s"
        if done.record_error is not None and done.sidecar is not None:
            log.error(
                "%s: %s (%s), but its sidecar cannot be written: %s; the fileID is kept and the "
                "sidecar written as soon as the folder allows",
                path,
                outcome.file_id,
                how,
                done.record_error,
            )
            self.unwritten.add(path, done.sidecar, done.signature)
            if self.once:
                self.gave_up[path] = f"uploaded as {outcome.file_id}, but the sidecar cannot be written"
            self._next_sidecar_retry = min(self._next_sidecar_retry, time.monotonic() + SIDECAR_RETRY_SECONDS)
        else:
            log.info("%s: %s → %s", path, how, outcome.file_id)
            self.done[path] = done.signature
            self.uploaded_count += 1
        self.failed.pop(path)
        self._untrack(path)

    # ---- periodic work ---------------------------------------------------------------------------

    def _housekeeping(self, now: float) -> None:
        if not self.once and now >= self._next_rescan:
            self._next_rescan = now + self.config.settings.rescan_seconds
            self._recheck_roots(now)
            for folder in self.config.folders:
                self.scanner.scan(folder)
        if now >= self._next_sidecar_retry:
            self._retry_unwritten_sidecars(now)
        if now >= self._next_root_check:
            self._recheck_roots(now)
        if self.notifier.watchdog_interval and now >= self._next_watchdog:
            if all(w.is_alive() for w in self._workers):
                self.notifier.watchdog()
            self._next_watchdog = now + self.notifier.watchdog_interval
        if self._is_ready and now >= self._next_status:
            # Sent when it changes, at most every STATUS_INTERVAL: an idle agent does not wake for it.
            line = self.status_line()
            if line != self._last_status:
                self._remember_status(line, now)
                self.notifier.status(line)

    def _retry_unwritten_sidecars(self, now: float) -> None:
        for path, entry in self.unwritten.items():
            try:
                current = signature_of(os.stat(path, follow_symlinks=False))
            except OSError:
                self.unwritten.discard(path)  # the image is gone: nothing to describe
                continue
            if current != entry.signature:
                self.unwritten.discard(path)  # the file changed: it is uploaded again anyway
                self._track_now(path, now)
                continue
            try:
                write_sidecar_atomically(path, entry.sidecar)
            except OSError:
                continue
            log.info("%s: sidecar written at last → %s", path, entry.sidecar.get("fileID"))
            self.unwritten.discard(path)
            self.done[path] = entry.signature
            self.uploaded_count += 1
        self._next_sidecar_retry = now + SIDECAR_RETRY_SECONDS if self.unwritten else float("inf")

    def _track_now(self, path: str, now: float) -> None:
        folder = self._folder_of(path)
        if folder is not None and path not in self.tracked:
            entry = self.tracked[path] = Tracked(folder)
            self._schedule(path, entry, now)

    def _folder_of(self, path: str) -> Folder | None:
        return next((f for f in self.config.folders if path.startswith(f.path.rstrip("/") + "/")), None)

    def _recheck_roots(self, now: float) -> None:
        """Re-establish watches whose folder was deleted, replaced or moved, once the path is a folder again."""
        self._next_root_check = float("inf")
        for folder in self.config.folders:
            watch = self._watches.get(folder.path)
            lost = folder.path in self._lost_roots or watch is None or not watch.is_current()
            if not lost:
                continue
            if not os.path.isdir(folder.path):
                self._lost_roots.add(folder.path)
                self._next_root_check = now + ROOT_RECHECK_SECONDS
                continue
            if watch is not None:
                watch.stop()
                del self._watches[folder.path]
            if folder.path in self._lost_roots:
                log.info("%s: the folder is back; watching it again", folder.path)
            self._lost_roots.discard(folder.path)
            self._start_watch(folder)
            self.scanner.scan(folder)

    def _remember_status(self, line: str, now: float) -> None:
        self._last_status = line
        self._next_status = now + STATUS_INTERVAL

    def _send_ready(self) -> None:
        line = self.status_line()
        self._remember_status(line, time.monotonic())
        self.notifier.ready(line)

    def status_line(self) -> str:
        uploading = self._in_flight
        failed = len(self.failed)
        pending = len(self.tracked) - uploading
        parts = [
            f"{len(self.config.folders)} folders watched",
            f"{uploading} uploading",
            f"{pending} pending",
            f"{failed} failed",
            f"{self.uploaded_count} uploaded since start",
        ]
        if self.accounts.paused:
            parts.append("paused: " + self.accounts.describe())
        return "; ".join(parts)

    # ---- reload ----------------------------------------------------------------------------------

    def _reload(self) -> None:
        if self._config_loader is None:
            return
        self.notifier.reloading()
        try:
            new = self._config_loader()
            # The token or base URL may have changed (a token file that cannot be read refuses the
            # reload like a bad key would); jobs in flight finish on the old client.
            client = self._client_factory(new)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self._send_ready()
            return
        self.client = client
        self._apply_config(new)
        log.info("config reloaded from %s: %d folders", new.source, len(new.folders))
        self._send_ready()

    def _apply_config(self, new: Config) -> None:
        old_folders = {f.path: f for f in self.config.folders}
        new_folders = {f.path: f for f in new.folders}
        for path, folder in old_folders.items():
            if new_folders.get(path) != folder:
                watch = self._watches.pop(path, None)
                if watch is not None:
                    watch.stop()
                self._drop_folder_state(folder)
        self.config = new
        self.tracker.settle_seconds = new.settings.settle_seconds
        self.tracker.confirm_seconds = min(DEFAULT_CONFIRM_SECONDS, new.settings.settle_seconds)
        self._ensure_workers(new.settings.concurrency)
        now = time.monotonic()
        for path, folder in new_folders.items():
            if old_folders.get(path) != folder:
                self._start_watch(folder)
                self.scanner.scan(folder)
        self.accounts.probe_all_now(now)

    def _drop_folder_state(self, folder: Folder) -> None:
        prefix = folder.path.rstrip("/") + "/"
        for table in (self.done, self.failed):
            table.forget_under(folder.path)
        for path in self.unwritten.paths():
            if path.startswith(prefix):
                self.unwritten.discard(path)
        for path in [
            p for p, e in self.tracked.items() if e.folder == folder and e.phase is not Phase.UPLOADING
        ]:
            self._untrack(path)
