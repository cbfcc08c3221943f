"""What the running agent tells the outside: each upload result counted once in the metrics, the folders'
and accounts' series kept to those configured, and the live status `status` reads, built from the
scheduler's counts and pauses and the folder locks. A real `Metrics` registry and a real state folder."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest

from watcher.core.accounts import AccountPause
from watcher.core.folders import Folder
from watcher.core.messages import JobDone, UploadJob
from watcher.core.outcome import FailureClass, UploadFailure, UploadSuccess
from watcher.core.scheduler import Scheduler
from watcher.core.signature import FileSignature
from watcher.report.live_status import MAX_RECENT, STATUS_FILE, LiveStatusWriter, read_recent
from watcher.report.metrics import Metrics
from watcher.report.reporter import Reporter
from watcher.watch.lock import FolderLocks

SIGNATURE = FileSignature(size=1234, mtime_ns=1, ino=2, ctime_ns=3)
SUCCESS = UploadSuccess("user:1-minimax:1-file:1", "oss/1", "0" * 64, 1234, "image/png")
ALICE = Folder("/srv/drop/alice", "111", False, False)
BOB = Folder("/srv/drop/bob", None, False, False)


@dataclass
class _Accounts:
    paused: dict[str, AccountPause] = field(default_factory=dict)


@dataclass
class SchedulerView:
    """The two things the reporter reads of the scheduler: its counts by folder and its paused accounts."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    accounts: _Accounts = field(default_factory=_Accounts)

    def counts_by_folder(self) -> dict[str, tuple[int, int]]:
        return self.counts


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def reporter(tmp_path: Path, metrics: Metrics) -> Iterator[Reporter]:
    reporter = Reporter(metrics, LiveStatusWriter(tmp_path))
    reporter.start()
    reporter.configure([ALICE, BOB])
    yield reporter
    reporter.close()


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def uploads(metrics: Metrics, account: str, result: str) -> float | None:
    return sample(metrics, "minimax_watcher_uploads_total", account=account, result=result)


def done(outcome: UploadSuccess | UploadFailure, *, reused: bool = False, **job: Any) -> JobDone:
    upload = replace(UploadJob(path="/srv/drop/alice/a.png", account="111", expected=SIGNATURE), **job)
    return JobDone(job=upload, outcome=outcome, signature=SIGNATURE, reused=reused, seconds=0.5)


def test_each_result_is_counted_under_its_account(reporter: Reporter, metrics: Metrics) -> None:
    reporter.job_done(done(SUCCESS))
    reporter.job_done(done(SUCCESS, reused=True))
    for failure_class in FailureClass:
        reporter.job_done(done(UploadFailure(failure_class, "no", 500)))
    assert [
        uploads(metrics, "111", r) for r in ("success", "reused", "temporary", "permanent", "account")
    ] == [
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ]
    assert sample(metrics, "minimax_watcher_uploaded_bytes_total", account="111") == 1234, "reused: not sent"
    assert sample(metrics, "minimax_watcher_upload_duration_seconds_count") == 1


def test_a_sidecar_written_late_is_not_counted_again(reporter: Reporter, metrics: Metrics) -> None:
    reporter.job_done(done(SUCCESS, stored_sidecar={"fileID": "x"}))
    assert uploads(metrics, "111", "success") == 0


def test_hook_runs_are_counted_by_hook_and_result(reporter: Reporter, metrics: Metrics) -> None:
    assert sample(metrics, "minimax_watcher_hook_runs_total", hook="on_upload", result="failed") == 0
    reporter.hook_run("on_upload", True)
    reporter.hook_run("on_failure", False)
    reporter.hook_run("on_something_else", True)  # not a hook: nothing, and no error in a hook thread
    assert sample(metrics, "minimax_watcher_hook_runs_total", hook="on_upload", result="ok") == 1
    assert sample(metrics, "minimax_watcher_hook_runs_total", hook="on_failure", result="failed") == 1


def locks(
    configured: tuple[str, ...],
    standing_by: dict[str, str] | None = None,
    blocked: dict[str, str] | None = None,
) -> FolderLocks:
    return FolderLocks(configured, standing_by or {}, blocked or {})


def test_refresh_sets_the_gauges_and_a_reload_drops_what_is_no_longer_configured(
    reporter: Reporter, metrics: Metrics
) -> None:
    view = SchedulerView(counts={ALICE.path: (3, 1), BOB.path: (0, 2)})
    view.accounts.paused["111"] = AccountPause("402 expired", next_probe=time.monotonic() + 60, refused=True)
    all_locks = locks(
        (ALICE.path, BOB.path), standing_by={BOB.path: "host h, pid 1"}, blocked={ALICE.path: "planted"}
    )
    reporter.refresh(cast(Scheduler, view), [], all_locks, time.monotonic())
    files = "minimax_watcher_files"
    assert sample(metrics, files, folder=ALICE.path, state="pending") == 3
    assert sample(metrics, files, folder=BOB.path, state="failed") == 2
    assert sample(metrics, "minimax_watcher_account_paused", account="111") == 1
    assert sample(metrics, "minimax_watcher_account_paused", account="default") == 0
    assert sample(metrics, "minimax_watcher_folder_standing_by", folder=BOB.path) == 1
    assert sample(metrics, "minimax_watcher_folder_lock_blocked", folder=ALICE.path) == 1

    reporter.configure([ALICE])
    reporter.refresh(
        cast(Scheduler, SchedulerView(counts={ALICE.path: (0, 0)})),
        [],
        locks((ALICE.path,)),
        time.monotonic(),
    )
    assert sample(metrics, files, folder=BOB.path, state="failed") is None
    assert sample(metrics, "minimax_watcher_folder_standing_by", folder=BOB.path) is None
    assert sample(metrics, "minimax_watcher_account_paused", account="default") is None
    assert sample(metrics, "minimax_watcher_account_paused", account="111") == 0, "resumed"


def test_the_live_status_says_who_runs_what_is_paused_sending_and_held(
    tmp_path: Path, reporter: Reporter
) -> None:
    now = time.monotonic()
    view = SchedulerView()
    view.accounts.paused["111"] = AccountPause("402 expired", next_probe=now + 120, refused=True)
    view.accounts.paused["999"] = AccountPause("5 failures", next_probe=now - 5, refused=False)
    sending = [("/srv/drop/bob/b.png", 10, 20), ("/srv/drop/alice/a.png", 1, 2)]
    all_locks = locks(
        (ALICE.path, BOB.path), standing_by={BOB.path: "host h, pid 1"}, blocked={"/x": "planted"}
    )
    before = time.time()
    reporter.refresh(cast(Scheduler, view), sending, all_locks, now)
    status = json.loads((tmp_path / STATUS_FILE).read_text())
    assert status["pid"] == os.getpid()
    assert [(a["account"], a["state"], a["reason"]) for a in status["accounts"]] == [
        ("default", "ok", None),
        ("111", "paused", "402 expired"),
        ("999", "held", "5 failures"),
    ]
    probe = status["accounts"][1]["next_probe"]
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before + 119)) <= probe
    assert probe <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 121))
    assert status["accounts"][2]["next_probe"] <= time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1)
    ), "overdue: now"
    assert status["uploading"] == [
        {"file": "/srv/drop/alice/a.png", "sent": 1, "size": 2},
        {"file": "/srv/drop/bob/b.png", "sent": 10, "size": 20},
    ]
    assert status["standing_by"] == [{"folder": BOB.path, "held_by": "host h, pid 1"}]
    assert status["lock_blocked"] == [{"folder": "/x", "problem": "planted"}]
    assert status["folders"] == [ALICE.path, BOB.path]
    reporter.close()
    assert not (tmp_path / STATUS_FILE).exists()


def test_the_latest_uploads_are_kept_newest_first_and_outlive_the_agent(
    tmp_path: Path, metrics: Metrics
) -> None:
    def uploaded(name: str, moved_to: str | None = None, **more: Any) -> JobDone:
        sidecar = {"fileID": f"user:1-minimax:1-file:{name}", "uploadedAt": f"2026-12-07T22:00:0{len(name)}Z"}
        job = replace(done(SUCCESS), sidecar=sidecar, moved_to=moved_to, **more)
        return replace(job, job=replace(job.job, path=f"{ALICE.path}/{name}", root=ALICE.path))

    first = Reporter(metrics, LiveStatusWriter(tmp_path))
    first.start()
    first.job_done(uploaded("a.png"))
    first.job_done(uploaded("b.png", moved_to=f"{ALICE.path}/done/b.png"))
    first.job_done(uploaded("c.png", record_error="the folder refused it"))  # no sidecar: not an upload
    first.job_done(replace(uploaded("d.png"), job=replace(uploaded("d.png").job, root="")))  # `upload`
    first.job_done(uploaded("a.png"))  # again (a sidecar rewritten): once, as the newest
    first.refresh(cast(Scheduler, SchedulerView()), [], FolderLocks((), {}, {}), time.monotonic())
    first.close()
    expected = [
        {"folder": ALICE.path, "path": f"{ALICE.path}/a.png", "fileID": "user:1-minimax:1-file:a.png",
         "uploaded": "2026-12-07T22:00:05Z"},
        {"folder": ALICE.path, "path": f"{ALICE.path}/done/b.png", "fileID": "user:1-minimax:1-file:b.png",
         "uploaded": "2026-12-07T22:00:05Z"},
    ]  # fmt: skip
    assert read_recent(tmp_path) == expected
    second = Reporter(metrics, LiveStatusWriter(tmp_path))
    second.start()
    for n in range(30):
        second.job_done(uploaded(f"n{n}.png"))
    second.refresh(cast(Scheduler, SchedulerView()), [], FolderLocks((), {}, {}), time.monotonic())
    second.close()
    kept = read_recent(tmp_path)
    assert len(kept) == MAX_RECENT and kept[0]["path"] == f"{ALICE.path}/n29.png"
