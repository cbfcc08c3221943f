"""The scanner thread walking real folders: what it reports, in batches the agent takes in at its pace,
what a walk's end says, and what only a start-up scan does (stale temporaries, files a stop left beside
their records instead of in done_dir). Queueing and turns: tests/unit/core/test_fair.py."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes
from watcher.core.folders import Folder
from watcher.core.messages import FileState, ScanBatch, ScanFinished
from watcher.core.signature import signature_of
from watcher.core.timings import Timings
from watcher.disk.records import build_sidecar
from watcher.scan import scanner as scanner_module
from watcher.scan.scanner import Scanner
from watcher.state.index import HistoryIndex


class Running:
    """A started scanner whose posts land in a queue; stopped, and its thread gone, at the end."""

    def __init__(self, **options: Any) -> None:
        self.posted: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.history = HistoryIndex(None)
        before = set(threading.enumerate())
        self.scanner = Scanner(self.posted.put, self.history, **options)
        self.scanner.start()
        (self.thread,) = set(threading.enumerate()) - before

    def next(self, timeout: float = 5.0) -> Any:
        return self.posted.get(timeout=timeout)

    def until_finished(self) -> tuple[list[ScanBatch], ScanFinished]:
        batches = []
        while not isinstance(message := self.next(), ScanFinished):
            batches.append(message)
            self.scanner.batch_taken()
        return batches, message

    def stop(self) -> None:
        self.scanner.stop()
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.history.close()


@pytest.fixture
def running() -> Iterator[Running]:
    started = Running()
    yield started
    started.stop()


def folder_at(path: Path, **options: Any) -> Folder:
    return Folder(str(path), ACCOUNT_A, True, False, **options)


def write_done(image: Path, seed: int) -> None:
    image.write_bytes(png_bytes(seed))
    record = build_sidecar(image_path=str(image), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:{seed}",
                           oss_path=f"oss/{seed}", signature=signature_of(os.stat(image)), sha256="0" * 64,
                           content_type="image/png")  # fmt: skip
    image.with_name(image.name + ".json").write_text(json.dumps(record))


def test_a_walk_reports_each_candidate_and_ends_with_the_listing_of_what_is_not_done(
    tmp_path: Path, running: Running
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "sub" / "b.png").write_bytes(png_bytes(2))
    write_done(tmp_path / "done.png", 3)
    (tmp_path / "notes.txt").write_text("not a candidate")
    folder = folder_at(tmp_path)
    running.scanner.scan(folder, generation=7)
    batches, finished = running.until_finished()
    found = {os.path.relpath(f.path, tmp_path): f.state for b in batches for f in b.files}
    assert found == {
        "a.png": FileState.PENDING,
        os.path.join("sub", "b.png"): FileState.PENDING,
        "done.png": FileState.DONE,
    }
    assert all(b.folder == folder and b.generation == 7 for b in batches)
    assert (finished.folder, finished.root, finished.initial, finished.generation) == (
        folder,
        str(tmp_path),
        False,
        7,
    )
    assert finished.listings == {str(tmp_path): {"a.png"}, str(tmp_path / "sub"): {"b.png"}}, (
        "done ones: not held"
    )


def test_batches_wait_for_the_agent_to_take_them_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner_module, "SCAN_BATCH", 2)
    monkeypatch.setattr(scanner_module, "BATCHES_IN_FLIGHT", 2)
    for i in range(9):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(i))
    scanning = Running()
    try:
        scanning.scanner.scan(folder_at(tmp_path))
        first, second = scanning.next(), scanning.next()
        assert [len(first.files), len(second.files)] == [2, 2]
        with pytest.raises(queue.Empty):
            scanning.next(timeout=0.3)  # two in flight: the walk waits for the agent
        scanning.scanner.batch_taken()
        assert len(scanning.next().files) == 2
        scanning.scanner.batch_taken()
        scanning.scanner.batch_taken()
        batches, finished = scanning.until_finished()
        assert [len(b.files) for b in batches] == [2, 1]
        assert len(finished.listings[str(tmp_path)]) == 9
    finally:
        scanning.stop()


def test_only_a_start_up_scan_removes_the_sidecar_temporaries_a_crash_left(tmp_path: Path) -> None:
    stale = tmp_path / ".a.png.json.0123abcd.tmp"
    stale.write_text("{")
    old = time.time() - 60
    os.utime(stale, (old, old))
    scanning = Running()
    try:
        fresh = tmp_path / ".b.png.json.89abcdef.tmp"
        fresh.write_text("{")  # a worker of this process writes it now
        scanning.scanner.scan(folder_at(tmp_path))
        scanning.until_finished()
        assert stale.exists(), "a rescan leaves them"
        scanning.scanner.scan(folder_at(tmp_path), initial=True)
        _, finished = scanning.until_finished()
        assert finished.initial
        assert not stale.exists() and fresh.exists()
    finally:
        scanning.stop()


def test_a_start_up_scan_says_it_is_still_starting(tmp_path: Path) -> None:
    told: list[float] = []
    scanning = Running(
        still_starting=lambda: told.append(time.monotonic()), timings=Timings(start_progress=0)
    )
    try:
        (tmp_path / "a.png").write_bytes(png_bytes(1))
        scanning.scanner.scan(folder_at(tmp_path))
        scanning.until_finished()
        assert told == [], "a rescan is no start"
        scanning.scanner.scan(folder_at(tmp_path), initial=True)
        scanning.until_finished()
        assert told, "told at a start-up scan's listing"
    finally:
        scanning.stop()


def test_a_done_file_a_stop_left_beside_its_sidecar_is_moved_at_the_start_only(tmp_path: Path) -> None:
    drop, done_dir = tmp_path / "drop", tmp_path / "done"
    drop.mkdir()
    done_dir.mkdir()
    write_done(drop / "a.png", 1)
    folder = folder_at(drop, done_dir=str(done_dir))
    scanning = Running()
    try:
        scanning.scanner.scan(folder)
        batches, _ = scanning.until_finished()
        assert [f.state for b in batches for f in b.files] == [FileState.DONE], "a rescan lets it be"
        assert (drop / "a.png").exists()
        scanning.scanner.scan(folder, initial=True)
        batches, _ = scanning.until_finished()
        assert [f for b in batches for f in b.files] == [], "moved, not reported"
        assert sorted(os.listdir(done_dir)) == ["a.png", "a.png.json"]
        assert sorted(os.listdir(drop)) == []
    finally:
        scanning.stop()


class BrokenWatch:
    """A folder watch whose every subfolder watch fails as nothing should: the walk fails with it."""

    def __init__(self) -> None:
        self.watched_all = 0

    def watch_subfolder(self, path: str) -> None:
        raise RuntimeError("unexpected")

    def watch_subfolders(self) -> None:
        self.watched_all += 1


def test_a_start_up_scan_that_fails_still_ends_and_watches_every_subfolder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sub").mkdir()
    watch = BrokenWatch()
    scanning = Running()
    try:
        folder = folder_at(tmp_path)
        scanning.scanner.scan(folder, initial=True, generation=3, watch=watch)
        _, finished = scanning.until_finished()
        assert (finished.folder, finished.initial, finished.generation, finished.listings) == (
            folder,
            True,
            3,
            {},
        )
        assert watch.watched_all == 1
        assert f"scan of {tmp_path} failed; it is retried at the next rescan" in caplog.text
    finally:
        scanning.stop()
