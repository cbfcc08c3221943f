"""The scheduler's state machine with a fake clock and a fake disk: every phase transition, reloads,
outages and holds, in milliseconds. No threads, no files, no HTTP."""

from __future__ import annotations

import dataclasses
import pkgutil
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

import watcher.core
from watcher.core.folders import Folder, FolderChanges
from watcher.core.messages import (
    EventKind,
    FileMessage,
    FileState,
    FoundFile,
    JobDone,
    PathEvent,
    ScanBatch,
    ScanFinished,
    UploadJob,
)
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess
from watcher.core.phases import Phase
from watcher.core.ports import Forget, IndexWrite, MarkDone, Observed, UnwrittenSidecar
from watcher.core.retry import RetryPolicy
from watcher.core.scheduler import LOOKS_PER_TURN, Scheduler
from watcher.core.signature import FileSignature
from watcher.core.timings import Timings
from watcher.state.index import HistoryIndex
from watcher.state.index_writes import apply_index_writes

A = Folder("/drop/a", "111111", recursive=False, polling=False)
B = Folder("/drop/b", "222222", recursive=True, polling=False)
WALL = 1_800_000_000.0  # the fake wall clock: files are "written" just now unless a test says otherwise


@dataclass
class FakeDisk:
    """Paths → signature, and what their sidecars say; the scheduler's FileProbe."""

    files: dict[str, FileSignature] = field(default_factory=dict)
    sidecar_account: dict[str, str] = field(default_factory=dict)  # a matching sidecar names this account
    complete: set[str] = field(default_factory=set)
    readable_again: set[str] = field(default_factory=set)
    observed: list[str] = field(default_factory=list)
    structure_read: list[str] = field(default_factory=list)

    def write(self, path: str, size: int = 100, mtime: float = WALL) -> FileSignature:
        sig = FileSignature(size, int(mtime * 1e9), 1000 + len(self.files))
        self.files[path] = sig
        return sig

    def observe(self, path: str) -> Observed | None:
        self.observed.append(path)
        sig = self.files.get(path)
        return Observed(sig, WALL) if sig is not None else None

    def looks_complete(self, path: str, size: int) -> bool:
        self.structure_read.append(path)
        return path in self.complete

    def classify(self, path: str, signature: FileSignature, account: str | None) -> FoundFile:
        owner = self.sidecar_account.get(path)
        if owner is not None and (account is None or owner == account):
            record = {"fileID": f"user:1-minimax:{owner}-file:9", "sha256": "ab", "account": owner}
            return FoundFile(path, signature, FileState.DONE, record)
        return FoundFile(path, signature, FileState.PENDING)

    def failure_still_holds(self, path: str, code: object) -> bool:
        return path not in self.readable_again


@dataclass
class FakeStore:
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, path: str, sidecar: dict[str, Any], signature: FileSignature) -> None:
        self.saved[path] = sidecar

    def discard(self, path: str) -> None:
        self.saved.pop(path, None)


class Applied(Scheduler):
    """The scheduler with its index writes applied after each call that decides some, as the agent's
    loop applies them."""

    def __init__(self, *folders: Folder, index: HistoryIndex, **kw: Any) -> None:
        super().__init__(folders, index=index, **kw)
        self.index = index

    def _apply(self) -> None:
        apply_index_writes(self.index, self.take_index_writes())

    def handle(self, message: FileMessage, now: float) -> None:
        super().handle(message, now)
        self._apply()

    def due(self, now: float) -> list[UploadJob]:
        jobs = super().due(now)
        self._apply()
        return jobs

    def reconfigure(self, folders: Iterable[Folder], **kw: Any) -> FolderChanges:
        changes = super().reconfigure(folders, **kw)
        self._apply()
        return changes

    def restore_unwritten(self, *args: Any, **kw: Any) -> None:
        super().restore_unwritten(*args, **kw)
        self._apply()


def make(
    *folders: Folder, disk: FakeDisk | None = None, store: FakeStore | None = None, **kw: Any
) -> tuple[Applied, FakeDisk, FakeStore]:
    disk = disk or FakeDisk()
    store = store or FakeStore()
    policy = RetryPolicy(rng=random.Random(7))
    scheduler = Applied(
        *(folders or (A,)),
        settle_seconds=kw.pop("settle_seconds", 2.0),
        concurrency=kw.pop("concurrency", 4),
        probe=disk,
        store=store,
        retry_policy=policy,
        timings=Timings(sidecar_retry=15.0),
        index=HistoryIndex(None),
        **kw,
    )
    return scheduler, disk, store


def ready_all(s: Scheduler) -> None:
    for folder in s.folders:
        s.handle(ScanFinished(folder, folder.path, {}, True, s.generation), 0.0)


def success(job: UploadJob, sig: FileSignature, account: str | None = None, **kw: Any) -> JobDone:
    account = account or job.account or "1"
    outcome = UploadSuccess(
        f"user:1-minimax:{account}-file:{job.attempt}", "https://oss/x", "ab", sig.size, "image/png"
    )
    sidecar = {"fileID": outcome.file_id, "account": account}
    return JobDone(job, outcome, sig, False, 0.1, sidecar, **kw)


def failure(
    job: UploadJob, sig: FileSignature | None, cls: FailureClass, code: object = 503, **kw: Any
) -> JobDone:
    return JobDone(job, UploadFailure(cls, f"HTTP {code}", code, **kw), sig, False, 0.1)


def event(kind: EventKind, path: str, folder: Folder = A, generation: int = 0) -> PathEvent:
    return PathEvent(kind, path, folder, generation)


def settle(s: Scheduler, path: str, at: float = 0.0, folder: Folder = A) -> list[UploadJob]:
    """A write event at `at`; the first look starts the quiet window, the next one finds it settled."""
    s.handle(event(EventKind.WRITE, path, folder, s.generation), at)
    assert s.due(at) == []
    assert s.due(at + s.tracker.settle_seconds) == []
    return s.due(at + 2 * s.tracker.settle_seconds)


# ---- settling ------------------------------------------------------------------------------------


def test_a_written_file_is_uploaded_once_it_has_held_still_for_the_settle_time() -> None:
    s, disk, _ = make()
    ready_all(s)
    sig = disk.write("/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    assert s.next_deadline() == 2.0
    assert s.due(1.0) == []  # nothing before the deadline
    assert s.due(2.0) == []  # first look: starts the quiet window
    jobs = s.due(4.0)
    assert [j.path for j in jobs] == ["/drop/a/x.png"]
    assert jobs[0].expected == sig and jobs[0].account == "111111" and jobs[0].attempt == 1
    assert s.tracked["/drop/a/x.png"].phase is Phase.UPLOADING


def test_a_close_event_on_a_complete_file_needs_only_the_short_confirmation() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    disk.complete.add("/drop/a/x.png")
    s.handle(event(EventKind.FINISHED, "/drop/a/x.png"), 10.0)
    assert s.due(10.0) == []  # looked at once, at the close
    assert [j.path for j in s.due(10.2)] == ["/drop/a/x.png"]


def test_the_confirmation_look_reads_the_structure_again_only_for_a_new_version() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    disk.complete.add("/drop/a/x.png")
    s.handle(event(EventKind.FINISHED, "/drop/a/x.png"), 10.0)
    assert s.due(10.0) == []
    assert [j.path for j in s.due(10.2)] == ["/drop/a/x.png"]
    assert disk.structure_read == ["/drop/a/x.png"], "same signature at the confirmation: read once"

    disk.write("/drop/a/y.png")
    disk.complete.add("/drop/a/y.png")
    s.handle(event(EventKind.FINISHED, "/drop/a/y.png"), 20.0)
    assert s.due(20.0) == []
    disk.write("/drop/a/y.png", size=200)  # rewritten (and closed again) before the confirmation
    s.handle(event(EventKind.FINISHED, "/drop/a/y.png"), 20.1)
    assert s.due(20.1) == []
    assert [j.path for j in s.due(20.3)] == ["/drop/a/y.png"]
    assert disk.structure_read.count("/drop/a/y.png") == 2


def test_a_close_event_on_an_incomplete_file_waits_the_full_settle_time() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")  # not in disk.complete
    s.handle(event(EventKind.FINISHED, "/drop/a/x.png"), 10.0)
    assert s.due(10.0) == [] and s.due(10.2) == []
    assert [j.path for j in s.due(12.0)] == ["/drop/a/x.png"]


def test_a_write_while_settling_restarts_the_wait() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    assert s.due(2.0) == []
    disk.write("/drop/a/x.png", size=200)
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 3.0)
    assert s.due(4.0) == []
    assert s.due(5.0) == []  # the look at 5.0 sees the new size: quiet since 5.0
    assert [j.path for j in s.due(7.0)] == ["/drop/a/x.png"]


def test_a_file_that_vanishes_while_settling_is_forgotten() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    del disk.files["/drop/a/x.png"]
    assert s.due(2.0) == []
    assert s.tracked == {}


def test_a_deleted_event_untracks_a_settling_file_but_not_one_uploading() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    disk.write("/drop/a/y.png")
    jobs = settle(s, "/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/y.png"), 0.0)
    s.handle(event(EventKind.DELETED, "/drop/a/y.png"), 0.5)
    assert "/drop/a/y.png" not in s.tracked
    s.handle(event(EventKind.DELETED, "/drop/a/x.png"), 0.5)
    assert s.tracked["/drop/a/x.png"].phase is Phase.UPLOADING  # its worker reports what happened
    s.handle(JobDone(jobs[0], FileChanged("the file disappeared"), None, False, 0.1), 5.0)
    del disk.files["/drop/a/x.png"]
    s.due(7.0)
    assert s.tracked == {} and s.in_flight == 0


def test_an_empty_file_costs_no_timer_until_an_event_or_a_scan_wakes_it() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png", size=0)
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    assert s.due(2.0) == []
    assert "/drop/a/x.png" not in s.tracked and s.next_deadline() == float("inf")
    assert s.summary().pending == 1  # still counted as pending
    disk.write("/drop/a/x.png", size=50)
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 10.0)
    s.due(12.0)
    assert [j.path for j in s.due(14.0)] == ["/drop/a/x.png"]


def test_scan_leaves_an_empty_file_as_empty_not_given_up_instead_of_waiting_forever() -> None:
    s, disk, _ = make(once=True)
    disk.write("/drop/a/x.png", size=0)
    s.handle(ScanBatch(A, [FoundFile("/drop/a/x.png", disk.files["/drop/a/x.png"], FileState.PENDING)]), 0.0)
    ready_all(s)
    s.due(0.0)
    assert s.idle() and s.gave_up == {} and s.ledger.empty == {"/drop/a/x.png"}
    assert not s.ledger.failed


def test_a_file_whose_sidecar_already_matches_is_recorded_done_without_an_upload() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png", mtime=WALL - 60)
    disk.sidecar_account["/drop/a/x.png"] = "111111"
    s.handle(event(EventKind.FINISHED, "/drop/a/x.png"), 0.0)
    assert s.due(0.0) == [] and s.due(0.2) == []
    assert s.tracked == {} and "/drop/a/x.png" in s.index


# ---- dispatch and results ------------------------------------------------------------------------


def test_a_turn_looks_at_a_bounded_number_of_files_and_asks_for_the_next_turn_at_once() -> None:
    # A folder's worth found at once must not hold the loop: results, stop requests and the watchdog
    # ping wait for the turn to end.
    s, disk, _ = make()
    ready_all(s)
    paths = [f"/drop/a/f{n}.png" for n in range(3 * LOOKS_PER_TURN + 5)]
    for path in paths:
        disk.write(path)
        disk.complete.add(path)
        s.handle(event(EventKind.FINISHED, path), 10.0)

    turns = 0
    while len(disk.observed) < len(paths):
        looked = len(disk.observed)
        assert s.due(10.0) == []
        assert 0 < len(disk.observed) - looked <= LOOKS_PER_TURN
        turns += 1
        assert s.next_deadline() <= 10.0 or len(disk.observed) == len(paths)
    assert turns == 4 and sorted(disk.observed) == sorted(paths)

    # The confirmations are spread the same way, and uploads start from the first turn of them.
    jobs = s.due(10.2)
    assert len(jobs) == 4 and len(disk.observed) == len(paths) + LOOKS_PER_TURN
    while s.next_deadline() <= 10.2:
        s.due(10.2)
    queued = [p for p, entry in s.tracked.items() if entry.phase is Phase.QUEUED]
    assert len(disk.observed) == 2 * len(paths) and len(queued) == len(paths) - 4


def test_concurrency_limits_jobs_in_flight_and_a_finished_job_frees_a_slot() -> None:
    s, disk, _ = make(concurrency=2)
    for name in "abc":
        disk.write(f"/drop/a/{name}.png")
        s.handle(event(EventKind.WRITE, f"/drop/a/{name}.png"), 0.0)
    s.due(2.0)
    jobs = s.due(4.0)
    assert len(jobs) == 2 and s.in_flight == 2
    assert s.due(4.0) == []
    s.handle(success(jobs[0], disk.files[jobs[0].path]), 5.0)
    more = s.due(5.0)
    assert len(more) == 1 and more[0].path not in {j.path for j in jobs}
    assert s.uploaded_count == 1 and jobs[0].path in s.index


def test_the_scheduler_leaves_its_index_writes_as_values_for_the_agent_to_apply() -> None:
    index = HistoryIndex(None)
    disk = FakeDisk()
    s = Scheduler([A], settle_seconds=2.0, concurrency=4, probe=disk, store=FakeStore(), index=index)
    sig = disk.write("/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    s.due(0.0), s.due(2.0)
    (job,) = s.due(4.0)
    assert s.take_index_writes() == [Forget("/drop/a/x.png")]  # pending on disk: not done in the index
    s.handle(success(job, sig), 5.0)
    assert "/drop/a/x.png" not in index  # nothing written from inside the scheduler
    writes: list[IndexWrite] = s.take_index_writes()
    assert writes == [MarkDone("/drop/a/x.png", sig, "111111", (0, 0))] and s.take_index_writes() == []
    apply_index_writes(index, writes)
    assert index.get("/drop/a/x.png") == sig


def test_a_temporary_failure_retries_with_backoff_and_then_succeeds() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.handle(failure(job, sig, FailureClass.TEMPORARY, retry_after=30.0), 10.0)
    entry = s.tracked["/drop/a/x.png"]
    assert entry.phase is Phase.RETRY_WAIT and entry.due >= 40.0  # Retry-After honoured
    assert s.due(39.0) == []
    (retry,) = s.due(entry.due)  # unchanged since it settled: it goes at once
    assert retry.attempt == 2
    s.handle(success(retry, sig), 50.0)
    assert s.tracked == {} and s.index.get("/drop/a/x.png") == sig


def test_failures_moved_to_failed_dir_count_as_failed_for_the_metrics() -> None:
    s, disk, _ = make()
    s.handle(ScanFinished(A, A.path, {}, True, s.generation, moved_failed=3), 0.0)  # a walk counted 3
    assert s.counts_by_folder()[A.path] == (0, 3)
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    moved = failure(job, sig, FailureClass.PERMANENT, 400)
    s.handle(dataclasses.replace(moved, moved_to="/drop/a/failed/x.png"), 5.0)
    assert s.counts_by_folder()[A.path] == (0, 4) and s.ledger.failed.get("/drop/a/x.png") is None
    s.handle(ScanFinished(A, A.path, {}, False, s.generation, moved_failed=1), 6.0)  # some were dealt with
    assert s.counts_by_folder()[A.path] == (0, 1)
    s.handle(ScanFinished(A, "/drop/a/sub", {}, False, s.generation), 7.0)  # a subfolder's walk: no count
    assert s.counts_by_folder()[A.path] == (0, 1)


def test_a_permanent_failure_records_the_file_as_failed_until_it_changes() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.handle(failure(job, sig, FailureClass.PERMANENT, 400), 5.0)
    assert s.tracked == {} and s.ledger.failed.get("/drop/a/x.png") is not None
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 6.0)  # same bytes (a touch without change)
    s.due(8.0)
    assert s.tracked == {}  # still failed: not retried
    disk.write("/drop/a/x.png", size=300)
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 9.0)
    s.due(11.0)
    assert [j.path for j in s.due(13.0)] == ["/drop/a/x.png"]


def test_an_unreadable_file_is_retried_as_soon_as_an_attribute_event_says_it_became_readable() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png", mtime=WALL - 60)
    s.handle(event(EventKind.FINISHED, "/drop/a/x.png"), 0.0)
    s.due(0.0)
    (job,) = s.due(0.2)
    s.handle(failure(job, sig, FailureClass.PERMANENT, "unreadable", local=True), 5.0)
    s.handle(event(EventKind.ATTRIB, "/drop/a/x.png"), 6.0)  # chmod, but still unreadable
    assert s.due(6.0) == [] and s.tracked == {}
    disk.readable_again.add("/drop/a/x.png")
    s.handle(event(EventKind.ATTRIB, "/drop/a/x.png"), 7.0)  # chmod +r
    s.due(7.0)
    assert [j.path for j in s.due(7.2)] == ["/drop/a/x.png"]  # a confirmation, not a settle time


def test_a_file_changed_during_upload_settles_again_and_uploads_its_final_bytes() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    disk.write("/drop/a/x.png", size=999)
    s.handle(JobDone(job, FileChanged("the file changed while it was uploaded"), sig, False, 0.1), 5.0)
    assert s.tracked["/drop/a/x.png"].phase is Phase.SETTLING
    s.due(7.0)
    (again,) = s.due(9.0)
    assert again.expected is not None and again.expected.size == 999


# ---- accounts: refusals and outages --------------------------------------------------------------


def test_a_refused_account_holds_its_files_and_probes_with_one_until_a_success_resumes_all() -> None:
    s, disk, _ = make(concurrency=1)
    sig = disk.write("/drop/a/x.png")
    disk.write("/drop/a/y.png")
    disk.write("/drop/a/z.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/y.png"), 0.0)
    s.handle(event(EventKind.WRITE, "/drop/a/z.png"), 0.0)
    s.handle(failure(job, sig, FailureClass.ACCOUNT, 402), 5.0)
    assert s.tracked["/drop/a/x.png"].phase is Phase.PAUSED
    s.due(6.0)
    assert s.due(8.0) == []  # y and z settle, but the account is held
    assert {p for p, e in s.tracked.items() if e.phase is Phase.PAUSED} == {f"/drop/a/{n}.png" for n in "xyz"}
    assert "paused" not in s.summary().paused and "HTTP 402" in s.summary().paused
    probes = s.due(5.0 + 30.0)
    assert len(probes) == 1  # one probe, not the backlog
    s.handle(success(probes[0], disk.files[probes[0].path]), 40.0)
    resumed = s.due(40.0) + s.due(42.0) + s.due(44.0)
    assert len(resumed) == 1  # concurrency 1: one at a time, but they go
    assert s.summary().paused == ""


def test_three_temporary_failures_in_a_row_hold_the_account_and_one_probe_follows_the_backoff() -> None:
    s, disk, _ = make(concurrency=3)
    sigs = {n: disk.write(f"/drop/a/{n}.png") for n in "abc"}
    for n in "abc":
        s.handle(event(EventKind.WRITE, f"/drop/a/{n}.png"), 0.0)
    s.due(2.0)
    jobs = s.due(4.0)
    for job in jobs:
        s.handle(failure(job, sigs[job.path[-5]], FailureClass.TEMPORARY), 5.0)
    assert s.accounts.paused["111111"].refused is False
    assert [e.phase for e in s.tracked.values()].count(Phase.PAUSED) == 1  # the third failure
    # The two that were already waiting for their retry join the hold instead of retrying.
    probes: list[UploadJob] = []
    for _ in range(3):
        probes += s.due(s.next_deadline())
    assert len(probes) == 1
    assert [e.phase for e in s.tracked.values()].count(Phase.PAUSED) == 2


def test_a_local_temporary_failure_never_counts_against_the_account() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    for i in range(5):
        s.handle(failure(job, sig, FailureClass.TEMPORARY, "io", local=True), 10.0 * (i + 1))
        entry = s.tracked["/drop/a/x.png"]
        assert entry.phase is Phase.RETRY_WAIT
        (job,) = s.due(entry.due)
    assert s.accounts.paused == {}


def test_scan_gives_a_file_up_after_its_policy_allows_and_reports_it() -> None:
    s, disk, _ = make(once=True, once_policy=RetryPolicy(give_up_after=2, rng=random.Random(1)))
    ready_all(s)
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.handle(failure(job, sig, FailureClass.TEMPORARY, local=True), 5.0)
    (job,) = s.due(s.tracked["/drop/a/x.png"].due)
    s.handle(failure(job, sig, FailureClass.TEMPORARY, local=True), 20.0)
    assert s.idle() and "/drop/a/x.png" in s.gave_up


# ---- sidecars a folder refused -------------------------------------------------------------------


def test_a_refused_sidecar_is_kept_and_written_later_without_a_second_upload() -> None:
    s, disk, store = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.handle(success(job, sig, record_error="Read-only file system"), 5.0)
    assert "/drop/a/x.png" in s.backlog and "/drop/a/x.png" in store.saved
    assert s.next_deadline() == 20.0
    (write,) = s.due(20.0)
    assert write.stored_sidecar is not None and write.expected == sig
    s.handle(success(write, sig, record_error="Read-only file system"), 20.1)
    (write,) = s.due(35.1)
    s.handle(success(write, sig), 35.2)
    assert "/drop/a/x.png" not in s.backlog and store.saved == {}
    assert s.index.get("/drop/a/x.png") == sig and s.uploaded_count == 1


def test_a_stored_sidecar_whose_file_changed_is_dropped_and_the_file_uploaded_again() -> None:
    s, disk, store = make()
    store.saved["/drop/a/x.png"] = {"fileID": "f"}
    sig = disk.write("/drop/a/x.png")
    s.restore_unwritten([("/drop/a/x.png", UnwrittenSidecar({"fileID": "f", "sha256": "ab"}, sig))], 0.0)
    (write,) = s.due(0.0)
    disk.write("/drop/a/x.png", size=5)
    s.handle(JobDone(write, FileChanged("the file changed"), disk.files["/drop/a/x.png"], True, 0.0), 0.1)
    assert "/drop/a/x.png" not in s.backlog and "/drop/a/x.png" in s.tracked
    assert store.saved == {}


def test_a_stored_sidecar_outside_every_folder_is_dropped_at_restore() -> None:
    s, _, store = make()
    store.saved["/elsewhere/x.png"] = {}
    s.restore_unwritten([("/elsewhere/x.png", UnwrittenSidecar({}, FileSignature(1, 1)))], 0.0)
    assert len(s.backlog) == 0 and store.saved == {}


# ---- scans ---------------------------------------------------------------------------------------


def test_ready_comes_after_every_folders_initial_scan() -> None:
    s, _, _ = make(A, B)
    assert not s.ready
    s.handle(ScanFinished(A, A.path, {}, True), 0.0)
    assert not s.ready
    s.handle(ScanFinished(B, B.path, {}, False), 0.0)  # a rescan does not count
    assert not s.ready
    s.handle(ScanFinished(B, B.path, {}, True), 0.0)
    assert s.ready


def test_the_ready_line_counts_one_folder_and_one_file_in_the_singular(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s, _, _ = make(A)
    s.ledger.mark_done("/drop/a/x.png", FileSignature(5, 5, 5), A.account or "", (1, 1))
    s.handle(ScanFinished(A, A.path, {}, True), 0.0)
    with caplog.at_level("INFO", logger="watcher"):
        s.tell_ready()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ready: ")]
    assert said == ["ready: 1 folder, 1 file already uploaded, 0 pending, 0 failed"]


def test_a_scan_reports_pending_files_for_upload_and_done_ones_for_the_index() -> None:
    s, disk, _ = make(trusts=lambda record: record.get("seal") == "ours")
    sig = disk.write("/drop/a/new.png")
    ours = {"fileID": "f", "sha256": "s", "seal": "ours"}
    done = FoundFile("/drop/a/old.png", FileSignature(5, 5, 5), FileState.DONE, ours)
    s.handle(ScanBatch(A, [FoundFile("/drop/a/new.png", sig, FileState.PENDING), done]), 0.0)
    assert "/drop/a/old.png" in s.index and "/drop/a/new.png" in s.tracked
    assert s.index.find("111111", 5, "s") is not None
    # Its sidecar went while nobody watched: the scan finds it pending, and the index loses.
    s.handle(ScanBatch(A, [FoundFile("/drop/a/old.png", FileSignature(5, 5, 5), FileState.PENDING)]), 1.0)
    assert "/drop/a/old.png" not in s.index and "/drop/a/old.png" in s.tracked


def test_a_rescan_forgets_the_done_files_of_subfolders_that_went() -> None:
    s, _, _ = make(B)
    sig = FileSignature(5, 5, 5)
    for path in ("/drop/b/x.png", "/drop/b/sub/y.png", "/drop/b/gone/z.png"):
        s.ledger.mark_done(path, sig, B.account or "", (1, 1))
    s.handle(ScanFinished(B, B.path, {B.path: set(), "/drop/b/sub": set()}, False), 1.0)
    assert "/drop/b/x.png" in s.index and "/drop/b/sub/y.png" in s.index
    assert "/drop/b/gone/z.png" not in s.index


def test_a_planted_sidecar_marks_its_own_file_done_but_never_lends_its_file_id() -> None:
    s, _, _ = make(trusts=lambda record: record.get("seal") == "ours")
    planted = {"fileID": "user:1-minimax:111111-file:666", "sha256": "victim", "seal": "forged"}
    decoy = FoundFile("/drop/a/decoy.png", FileSignature(7, 7, 7), FileState.DONE, planted)
    s.handle(ScanBatch(A, [decoy]), 0.0)
    assert "/drop/a/decoy.png" in s.index
    assert s.index.find("111111", 7, "victim") is None


def test_a_sidecar_in_doubt_lends_its_file_id_to_the_re_hash_only_when_it_is_ours() -> None:
    s, disk, _ = make(trusts=lambda record: record.get("seal") == "ours")
    sig = disk.write("/drop/a/restored.png")
    ours = {"fileID": "f", "sha256": "same", "seal": "ours"}
    s.handle(ScanBatch(A, [FoundFile("/drop/a/restored.png", sig, FileState.PENDING, ours)]), 0.0)
    assert s.index.find("111111", sig.size, "same") is not None
    assert "/drop/a/restored.png" in s.tracked  # uploaded (or reused after the hash), never assumed


# ---- reloads -------------------------------------------------------------------------------------


def test_reload_changing_the_account_during_an_upload_reuploads_for_the_new_account() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    moved = Folder(A.path, "333333", False, False)
    changes = s.reconfigure([moved], settle_seconds=2.0, concurrency=4, now=5.0)
    assert changes.removed == (A,) and changes.added == (moved,)
    # The old upload finishes and its worker wrote a sidecar for the old account.
    disk.sidecar_account["/drop/a/x.png"] = "111111"
    s.handle(success(job, sig), 6.0)
    assert "/drop/a/x.png" not in s.index  # not recorded as done for the new mapping
    (again,) = s.due(6.0)  # settled long ago: judged again at once, and the old sidecar does not count
    assert again.account == "333333"


def test_events_queued_before_a_reload_are_resolved_against_the_new_folders() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    moved = Folder(A.path, "333333", False, False)
    s.reconfigure([moved], settle_seconds=2.0, concurrency=4, now=0.0)
    s.handle(event(EventKind.WRITE, "/drop/a/x.png", A, generation=0), 1.0)  # stamped before the reload
    assert s.tracked["/drop/a/x.png"].folder == moved
    s.due(3.0)
    (job,) = s.due(5.0)
    assert job.account == "333333"


def test_a_scan_batch_from_before_a_reload_is_judged_again_for_the_new_account() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png", mtime=WALL - 60)
    moved = Folder(A.path, "333333", False, False)
    s.reconfigure([moved], settle_seconds=2.0, concurrency=4, now=0.0)
    stale = FoundFile(
        "/drop/a/x.png", sig, FileState.DONE, {"fileID": "user:1-minimax:111111-file:1", "sha256": "x"}
    )
    s.handle(ScanBatch(A, [stale], generation=0), 1.0)
    assert "/drop/a/x.png" not in s.index and "/drop/a/x.png" in s.tracked
    s.due(1.0)
    (job,) = s.due(1.2)
    assert job.account == "333333"


def test_a_removed_folders_file_stops_even_when_its_upload_fails_during_an_outage() -> None:
    s, disk, _ = make(A, B)
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.reconfigure([B], settle_seconds=2.0, concurrency=4, now=5.0)
    s.handle(failure(job, sig, FailureClass.TEMPORARY), 6.0)
    assert s.tracked == {} and s.in_flight == 0
    assert s.next_deadline() == float("inf")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png", A, generation=0), 7.0)  # a late event
    assert s.tracked == {}


def test_a_removed_folders_settling_files_and_records_are_dropped() -> None:
    s, disk, _ = make(A, B)
    disk.write("/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    s.handle(ScanBatch(A, [FoundFile("/drop/a/d.png", FileSignature(1, 1), FileState.DONE, None)]), 0.0)
    changes = s.reconfigure([B], settle_seconds=2.0, concurrency=4, now=1.0)
    assert changes.removed == (A,) and changes.added == ()
    assert s.tracked == {} and "/drop/a/d.png" not in s.index


def test_a_result_for_a_file_tracked_anew_meanwhile_has_it_judged_again() -> None:
    s, disk, _ = make(A, B, concurrency=1)
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.reconfigure([B], settle_seconds=2.0, concurrency=1, now=5.0)  # its folder goes during the upload
    s.reconfigure([A, B], settle_seconds=2.0, concurrency=1, now=6.0)  # and comes back
    s.handle(event(EventKind.WRITE, "/drop/a/x.png", A, s.generation), 6.0)
    assert s.due(6.0) == s.due(8.0) == s.due(10.0) == []  # the slot is the old upload's
    assert s.tracked["/drop/a/x.png"].phase is Phase.QUEUED
    s.handle(failure(job, sig, FailureClass.TEMPORARY), 9.0)  # not this tracking's upload
    assert s.tracked["/drop/a/x.png"].phase is Phase.SETTLING and s.in_flight == 0


def test_a_removed_sidecar_has_its_done_file_looked_at_again_and_other_removals_are_ignored() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    s.handle(ScanBatch(A, [FoundFile("/drop/a/x.png", sig, FileState.DONE, None, (1, 1))]), 0.0)
    assert "/drop/a/x.png" in s.index and s.tracked == {}
    s.handle(event(EventKind.RECORD_DELETED, "/drop/a/other.png"), 1.0)
    assert s.tracked == {}
    s.handle(event(EventKind.RECORD_DELETED, "/drop/a/x.png"), 1.0)
    assert "/drop/a/x.png" in s.tracked and "/drop/a/x.png" not in s.index
    # A name the index cannot store may be done all the same: it is looked at again too.
    s.handle(event(EventKind.RECORD_DELETED, "/drop/a/\udcff.png"), 1.0)
    assert "/drop/a/\udcff.png" in s.tracked


def test_an_added_folder_is_reported_for_watching_and_scanning() -> None:
    s, _, _ = make(A)
    changes = s.reconfigure([A, B], settle_seconds=2.0, concurrency=4, now=0.0)
    assert changes.added == (B,) and changes.removed == ()
    assert s.folder_for("/drop/b/sub/x.png") == B


def test_a_new_settle_time_applies_to_files_settling_from_then_on() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    s.reconfigure([A], settle_seconds=10.0, concurrency=4, now=0.0)
    s.handle(event(EventKind.WRITE, "/drop/a/x.png", A, s.generation), 0.0)
    s.due(10.0)
    assert s.due(15.0) == []
    assert [j.path for j in s.due(20.0)] == ["/drop/a/x.png"]


def test_reload_probes_paused_accounts_at_once() -> None:
    s, disk, _ = make()
    sig = disk.write("/drop/a/x.png")
    (job,) = settle(s, "/drop/a/x.png")
    s.handle(failure(job, sig, FailureClass.ACCOUNT, 401), 5.0)
    assert s.due(6.0) == []
    s.reconfigure([A], settle_seconds=2.0, concurrency=4, now=7.0)
    assert [j.path for j in s.due(7.0)] == ["/drop/a/x.png"]


def test_a_non_recursive_folder_does_not_own_files_in_its_subfolders() -> None:
    s, _, _ = make(A, B)
    assert s.folder_for("/drop/a/sub/x.png") is None
    assert s.folder_for("/drop/a/x.png") == A
    assert s.folder_for("/drop/ab/x.png") is None


# The rooms that do I/O, and the modules that would let core do it itself.
IO_ROOMS = (
    "state",
    "disk",
    "scan",
    "upload",
    "watch",
    "hooks",
    "report",
    "config",
    "cli",
    "service",
    "emulator",
)
IO_MODULES = ("watcher.agent", "sqlite3", "subprocess", "ssl", "http", "urllib3", "requests", "watchdog")
CORE_MODULES = sorted(f"watcher.core.{m.name}" for m in pkgutil.iter_modules(watcher.core.__path__))


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_imports_nothing_that_does_io(module: str) -> None:
    import subprocess
    import sys

    code = f"import sys; import {module}; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    forbidden = (*(f"watcher.{room}" for room in IO_ROOMS), *IO_MODULES)
    assert [m for m in loaded.split() if any(m == f or m.startswith(f"{f}.") for f in forbidden)] == []


def test_files_in_dot_folders_belong_to_no_folder_wherever_they_come_from() -> None:
    s, disk, _ = make(A, B)
    assert s.folder_for("/drop/b/.cache/x.png") is None
    assert s.folder_for("/drop/b/sub/.git/deep/x.png") is None
    assert s.folder_for("/drop/b/sub/x.png") == B
    disk.write("/drop/b/.cache/x.png")
    s.reconfigure([A, B], settle_seconds=2.0, concurrency=4, now=0.0)
    s.handle(event(EventKind.WRITE, "/drop/b/.cache/x.png", B, generation=0), 0.0)
    assert s.tracked == {}


def test_a_name_too_long_for_its_records_is_failed_once_with_the_reason_and_never_uploaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s, disk, _ = make()
    long_name = "/drop/a/" + "x" * 241 + ".png"  # 245 bytes: no room for `.error.json`
    fine_name = "/drop/a/" + "y" * 240 + ".png"  # 244 bytes: both records fit
    disk.write(long_name, mtime=WALL - 60)
    disk.write(fine_name, mtime=WALL - 60)
    for path in (long_name, fine_name):
        s.handle(event(EventKind.FINISHED, path), 0.0)
    s.due(0.0)
    jobs = s.due(0.2)
    assert [j.path for j in jobs] == [fine_name]
    failed = s.ledger.failed.get(long_name)
    assert failed is not None and failed.code == "name_too_long" and "245 bytes" in failed.error
    s.handle(event(EventKind.ATTRIB, long_name), 1.0)  # looked at again: no second error line
    s.due(1.0)
    assert sum("245 bytes" in r.getMessage() for r in caplog.records) == 1
    assert s.summary().failed == 1


def test_timings_from_the_environment_override_only_what_they_name() -> None:
    t = Timings.from_env(
        {"MINIMAX_WATCHER_TIMINGS": "sidecar_retry=1, root_recheck=0.5,bogus=3,stop_grace=-1"}
    )
    assert (t.sidecar_retry, t.root_recheck, t.stop_grace) == (1.0, 0.5, Timings().stop_grace)
    assert Timings.from_env({}) == Timings()


def test_a_folders_own_settle_time_overrides_the_global_one() -> None:
    slow = Folder("/drop/slow", "111111", False, False, settle_seconds=10.0)
    s, disk, _ = make(A, slow)
    disk.write("/drop/slow/x.png")
    disk.write("/drop/a/y.png")
    s.handle(event(EventKind.WRITE, "/drop/slow/x.png", slow), 0.0)
    s.handle(event(EventKind.WRITE, "/drop/a/y.png"), 0.0)
    s.due(2.0)
    assert [j.path for j in s.due(4.0)] == ["/drop/a/y.png"]
    s.due(10.0)
    assert s.due(19.0) == []
    assert [j.path for j in s.due(20.0)] == ["/drop/slow/x.png"]


def test_a_file_a_reload_no_longer_includes_stops_being_a_candidate() -> None:
    s, disk, _ = make()
    disk.write("/drop/a/x.png")
    s.handle(event(EventKind.WRITE, "/drop/a/x.png"), 0.0)
    narrowed = Folder(A.path, A.account, False, False, include=("keep-*.png",))
    s.reconfigure([narrowed], settle_seconds=2.0, concurrency=4, now=1.0)
    assert s.due(1.0) == [] and s.due(5.0) == []
    assert s.tracked == {}
