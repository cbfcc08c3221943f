"""What the running agent tells the outside apart from its log: metrics and the live status, published only
when their content changed, so an idle agent writes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from watcher.core.folders import Folder
from watcher.core.messages import JobDone
from watcher.core.outcome import FailureClass, UploadFailure, UploadSuccess
from watcher.core.scheduler import Scheduler
from watcher.report.live_status import MAX_RECENT, LiveStatusWriter, read_recent
from watcher.report.metrics import HOOKS, MetricsSink, UploadResult
from watcher.watch.lock import FolderLocks

RESULTS: dict[FailureClass, UploadResult] = {
    FailureClass.TEMPORARY: "temporary",
    FailureClass.PERMANENT: "permanent",
    FailureClass.ACCOUNT: "account",
}


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Reporter:
    def __init__(self, metrics: MetricsSink, live: LiveStatusWriter) -> None:
        self.metrics = metrics
        self._live = live
        self._since = time.time()
        self._folders: tuple[Folder, ...] = ()
        self._accounts: set[str] = set()
        self._lock_folders: set[str] = set()  # configured folders whose lock gauges are exported
        self._recent: list[dict[str, Any]] = []  # the latest uploads, newest first
        for hook in HOOKS:
            metrics.track_hook(hook)

    def hook_run(self, hook: str, ok: bool) -> None:
        """A hook process ended (the hook runner's `on_result`, from its threads)."""
        for name in HOOKS:
            if name == hook:
                self.metrics.hook_run(name, ok)

    def start(self) -> None:
        if self._live.start():
            self._recent = read_recent(self._live.state_dir)  # the last run's, until new ones come

    def configure(self, folders: Iterable[Folder]) -> None:
        """The folders this agent works on now: their series are exported from 0, removed ones dropped."""
        folders = tuple(folders)
        for gone in {f.path for f in self._folders} - {f.path for f in folders}:
            self.metrics.forget_folder(gone)
        accounts = {f.account_key for f in folders}
        for gone in self._accounts - accounts:
            self.metrics.forget_account(gone)
        for account in accounts:
            self.metrics.track_account(account)
        self._folders, self._accounts = folders, accounts

    def job_done(self, done: JobDone) -> None:
        self._remember_upload(done)
        if done.job.stored_sidecar is not None:
            return  # only a sidecar written late: the upload was counted when it happened
        outcome = done.outcome
        size = done.signature.size if done.signature is not None else 0
        if isinstance(outcome, UploadSuccess) and done.reused:
            self.metrics.upload_finished(done.job.account, "reused", size)
        elif isinstance(outcome, UploadSuccess):
            self.metrics.upload_finished(done.job.account, "success", size, done.seconds)
        elif isinstance(outcome, UploadFailure):
            self.metrics.upload_finished(done.job.account, RESULTS[outcome.failure_class])

    def _remember_upload(self, done: JobDone) -> None:
        """A sidecar written in a watched folder joins the latest uploads (`status`'s `recent`)."""
        sidecar = done.sidecar
        if sidecar is None or done.record_error is not None or not done.job.root:
            return
        where = done.moved_to or done.job.path
        upload = {
            "folder": done.job.root,
            "path": where,
            "fileID": sidecar.get("fileID"),
            "uploaded": sidecar.get("uploadedAt"),
        }
        self._recent = [upload, *(u for u in self._recent if u["path"] != where)][:MAX_RECENT]

    def refresh(
        self,
        scheduler: Scheduler,
        sending: list[tuple[str, int, int]],
        locks: FolderLocks,
        now: float,
    ) -> None:
        for path, (pending, failed) in scheduler.counts_by_folder().items():
            self.metrics.set_files(path, pending, failed)
        paused = scheduler.accounts.paused
        for account in self._accounts:
            self.metrics.set_paused(account, account in paused)
        for gone in self._lock_folders - set(locks.configured):
            self.metrics.forget_folder_lock(gone)
        for path in locks.configured:
            self.metrics.set_folder_lock(path, path in locks.standing_by, path in locks.blocked)
        self._lock_folders = set(locks.configured)
        self._live.publish(self._snapshot(scheduler, sending, locks, now))
        self._live.publish_recent(self._recent)

    def _snapshot(
        self,
        scheduler: Scheduler,
        sending: list[tuple[str, int, int]],
        locks: FolderLocks,
        now: float,
    ) -> dict[str, Any]:
        wall = time.time()
        accounts = []
        for key in sorted(self._accounts | set(scheduler.accounts.paused)):
            pause = scheduler.accounts.paused.get(key)
            entry: dict[str, Any] = {
                "account": key or "default",
                "state": "ok",
                "reason": None,
                "next_probe": None,
            }
            if pause is not None:
                entry["state"] = "paused" if pause.refused else "held"
                entry["reason"] = pause.reason
                entry["next_probe"] = iso(wall + max(0.0, pause.next_probe - now))
            accounts.append(entry)
        return {
            "pid": os.getpid(),
            "since": iso(self._since),
            "accounts": accounts,
            "uploading": [{"file": path, "sent": sent, "size": size} for path, sent, size in sorted(sending)],
            "standing_by": [{"folder": p, "held_by": who} for p, who in locks.standing_by.items()],
            "lock_blocked": [{"folder": p, "problem": what} for p, what in locks.blocked.items()],
            # So that `status` with another config does not call these folders' agent running.
            "folders": list(locks.configured),
        }

    def close(self) -> None:
        self._live.close()
        self.metrics.close()
