"""Fair shares between folders in the scheduler (issue 21, item 16): a folder with thousands of files due
at once does not push another folder's new file behind them, for its look or its upload slot; and a churn
of files made and deleted leaves no timers behind (item 11)."""

from __future__ import annotations

from tests.unit.core.test_scheduler import WALL, A, B, event, make, ready_all, settle, success
from watcher.core.messages import EventKind
from watcher.core.scheduler import LOOKS_PER_TURN, STALE_TIMERS
from watcher.scan.inventory import DirectoryMemo
from watcher.scan.scanner import SUBFOLDER_SCANS, Scanner
from watcher.state.index import HistoryIndex


def test_a_flooded_folder_does_not_hold_back_another_folders_look_or_upload() -> None:
    s, disk, _ = make(A, B)
    ready_all(s)
    for n in range(20 * LOOKS_PER_TURN):
        path = f"/drop/a/bad-{n}.png"
        disk.write(path)
        disk.complete.add(path)
        s.handle(event(EventKind.FINISHED, path, A), 10.0)
    # A's files take every upload slot and fill the queue behind them.
    for now in (10.0, 10.2):
        while s.next_deadline() <= now:
            s.due(now)
    assert s.in_flight == 4

    image = "/drop/b/new.png"
    disk.write(image)
    disk.complete.add(image)
    s.handle(event(EventKind.FINISHED, image, B), 11.0)
    s.due(11.0)
    assert image in disk.observed  # looked at in its first turn, beside A's
    s.due(11.2)
    assert image in disk.observed[-LOOKS_PER_TURN:]  # confirmed in the next
    # One of the next two free slots is B's, whatever A still has queued (the folders take turns).
    s.in_flight -= 2  # two of A's uploads ended
    jobs = s.due(11.2)
    assert image in [job.path for job in jobs] and len(jobs) == 2


def test_a_churn_of_files_made_and_deleted_leaves_no_timers_behind() -> None:
    s, _, _ = make(A, settle_seconds=60.0)
    ready_all(s)
    now = 10.0
    for n in range(10 * STALE_TIMERS):
        path = f"/drop/a/c{n}.png"
        s.handle(event(EventKind.WRITE, path), now)
        s.handle(event(EventKind.FINISHED, path), now)
        s.handle(event(EventKind.DELETED, path), now)
        if n % 100 == 0:
            now += 0.01
            s.due(now)
    assert not s.tracked
    assert len(s._timers) <= STALE_TIMERS + 2


def test_walks_asked_for_again_and_again_wait_once_and_a_flood_of_subfolders_becomes_one_walk() -> None:
    asked = Scanner(lambda message: None, HistoryIndex(None))  # not started: nothing is walked
    for _ in range(1000):
        asked.scan(B, periodic=True)
        asked.scan(B, "/drop/b/same")
    for n in range(10_000):
        asked.scan(B, f"/drop/b/d{n}")  # a dropper making directories faster than they are walked
    waiting = []
    while not asked._requests.empty():
        waiting.append(asked._requests.get_nowait())
    assert len(waiting) <= SUBFOLDER_SCANS + 2
    assert {(r.root, r.periodic) for r in waiting} >= {("/drop/b", True), ("/drop/b", False)}


def test_directories_that_went_are_not_remembered_after_a_whole_walk() -> None:
    memo = DirectoryMemo()
    for n in range(100):
        memo.remember(f"/drop/b/d{n}", (n, 0, 0), [])
    memo.remember("/drop/c", (1, 0, 0), [])
    memo.keep_only("/drop/b", {"/drop/b", "/drop/b/d1"})
    assert memo.unchanged("/drop/b/d1", (1, 0, 0), 1) == ()
    assert memo.unchanged("/drop/b/d2", (2, 0, 0), 1) is None
    assert memo.unchanged("/drop/c", (1, 0, 0), 1) == ()


def test_a_touch_while_the_file_uploads_is_looked_at_once_the_upload_is_in() -> None:
    # Seen under load: the touch's event came before the upload's result, and was dropped with the
    # entry when the result untracked it; the sidecar kept describing the old mtime until a rescan.
    s, disk, _ = make(A)
    ready_all(s)
    sig = disk.write("/drop/a/x.png")
    [job] = settle(s, "/drop/a/x.png")
    touched = disk.write("/drop/a/x.png", mtime=WALL + 5)
    s.handle(event(EventKind.ATTRIB, "/drop/a/x.png"), 5.0)
    s.handle(success(job, sig), 5.1)
    looked = len(disk.observed)
    s.due(5.1)
    assert disk.observed[looked:] == ["/drop/a/x.png"]
    assert s.tracker.signature("/drop/a/x.png") == touched


def test_walks_of_a_folder_take_turns_with_another_folders() -> None:
    asked = Scanner(lambda message: None, HistoryIndex(None))  # not started: nothing is walked
    for n in range(10):
        asked.scan(A, f"/drop/a/d{n}")
    asked.scan(B, "/drop/b/new")
    walked = [asked._next_request() for _ in range(3)]
    assert [r.root for r in walked if r is not None] == ["/drop/a/d0", "/drop/b/new", "/drop/a/d1"]
