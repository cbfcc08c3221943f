"""Folder watches on the one shared inotify instance: the kernel's events, as the agent's `PathEvent`s.

Real inotify on real folders, in-process: what is checked is the translation and the watch bookkeeping
(subfolders made, renamed, moved away; dot-names; the folder itself going).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcher.core.folders import Folder
from watcher.core.messages import EventKind, PathEvent
from watcher.watch.inotify import OutOfWatches
from watcher.watch.lock import LOCK_NAME
from watcher.watch.observers import FolderWatch, Observers


class Seen:
    """The events one folder watch posted (on the inotify reader thread)."""

    def __init__(self) -> None:
        self.events: list[PathEvent] = []

    def post(self, event: PathEvent) -> None:
        self.events.append(event)

    def kinds(self, path: Path | str) -> list[EventKind]:
        return [e.kind for e in list(self.events) if e.path == str(path)]

    def wait(self, kind: EventKind, path: Path | str) -> None:
        wait_for(lambda: kind in self.kinds(path), 5, f"{kind} for {path}; seen {self.events}")

    def paths(self) -> set[str]:
        return {e.path for e in list(self.events)}

    def settled(self, folder: Path) -> None:
        """Every event of what was done before has arrived: the kernel queues in order, so once a file
        written now is reported, what came before it was too."""
        sentinel = folder / f"sentinel-{len(self.events)}.png"
        sentinel.write_bytes(b"x")
        self.wait(EventKind.FINISHED, sentinel)


@pytest.fixture
def observers() -> Iterator[Observers]:
    shared = Observers()
    yield shared
    shared.stop()


def watch(path: Path, observers: Observers, *, recursive: bool = True) -> tuple[FolderWatch, Seen]:
    seen = Seen()
    folder_watch = FolderWatch(Folder(str(path), None, recursive, False), seen.post, 0, observers)
    folder_watch.start()
    assert folder_watch.mode == "inotify"
    return folder_watch, seen


def test_a_written_renamed_and_removed_image(tmp_path: Path, observers: Observers) -> None:
    _, seen = watch(tmp_path, observers)
    image = tmp_path / "a.png"
    image.write_bytes(b"png")
    seen.wait(EventKind.FINISHED, image)
    assert seen.kinds(image)[0] is EventKind.WRITE
    part = tmp_path / "b.png.part"
    part.write_bytes(b"png")
    part.rename(tmp_path / "b.png")
    seen.wait(EventKind.FINISHED, tmp_path / "b.png")
    (tmp_path / "b.png").rename(tmp_path / "c.png")
    seen.wait(EventKind.FINISHED, tmp_path / "c.png")
    assert seen.kinds(tmp_path / "b.png")[-1] is EventKind.DELETED
    # The agent's own sidecar, written through a dot-file temporary: only its removal matters.
    temporary = tmp_path / ".c.png.json.0123abcd.tmp"
    temporary.write_text("{}")
    temporary.rename(tmp_path / "c.png.json")
    (tmp_path / "c.png.json").unlink()
    seen.wait(EventKind.RECORD_DELETED, tmp_path / "c.png")
    image.unlink()
    seen.wait(EventKind.DELETED, image)
    os.chmod(tmp_path / "c.png", 0o600)
    seen.wait(EventKind.ATTRIB, tmp_path / "c.png")
    assert not any("/." in p for p in seen.paths()), seen.events
    assert str(part) not in seen.paths()


def test_the_lock_file_removed_or_the_folder_moved_is_the_folder_gone(
    tmp_path: Path, observers: Observers
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / LOCK_NAME).write_text("")
    _, seen = watch(drop, observers)
    (drop / LOCK_NAME).unlink()
    seen.wait(EventKind.ROOT_GONE, drop)
    seen.events.clear()
    drop.rename(tmp_path / "elsewhere")
    seen.wait(EventKind.ROOT_GONE, drop)
    seen.events.clear()
    (tmp_path / "elsewhere").rmdir()
    other = tmp_path / "other"
    other.mkdir()
    _, seen = watch(other, observers)
    other.rmdir()
    seen.wait(EventKind.ROOT_GONE, other)


def test_subfolders_that_appear_are_watched_down_to_the_last(tmp_path: Path, observers: Observers) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    _, seen = watch(drop, observers)
    (drop / "a" / "b" / "c").mkdir(parents=True)
    seen.wait(EventKind.DIR_APPEARED, drop / "a")
    seen.settled(drop)  # b and c were either listed with a, or announced in a and b once those were watched
    deep = drop / "a" / "b" / "c" / "deep.png"
    deep.write_bytes(b"png")
    seen.wait(EventKind.FINISHED, deep)
    # A tree moved in whole: each of its subfolders is there when it is listed.
    (tmp_path / "made" / "y" / "z").mkdir(parents=True)
    (tmp_path / "made").rename(drop / "moved")
    seen.wait(EventKind.DIR_APPEARED, drop / "moved")
    deep = drop / "moved" / "y" / "z" / "deep.png"
    deep.write_bytes(b"png")
    seen.wait(EventKind.FINISHED, deep)


def test_dot_folders_are_never_watched(tmp_path: Path, observers: Observers) -> None:
    (tmp_path / ".early").mkdir()
    _, seen = watch(tmp_path, observers)
    (tmp_path / ".late" / "sub").mkdir(parents=True)
    for folder in (".early", ".late", ".late/sub"):
        (tmp_path / folder / "x.png").write_bytes(b"png")
    seen.settled(tmp_path)
    assert not any("/." in p for p in seen.paths()), seen.events


def test_a_renamed_subfolder_is_watched_at_its_new_name(tmp_path: Path, observers: Observers) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "old.png").write_bytes(b"png")
    _, seen = watch(tmp_path, observers)
    (tmp_path / "sub").rename(tmp_path / "renamed")
    seen.wait(EventKind.DIR_APPEARED, tmp_path / "renamed")
    assert seen.kinds(tmp_path / "sub" / "deeper" / "old.png") == [EventKind.DELETED]
    assert seen.kinds(tmp_path / "renamed" / "deeper" / "old.png") == [EventKind.FINISHED]
    new = tmp_path / "renamed" / "deeper" / "new.png"
    new.write_bytes(b"png")
    seen.wait(EventKind.FINISHED, new)
    assert not any(p.startswith(str(tmp_path / "sub") + "/") and "new" in p for p in seen.paths())


def test_a_subfolder_moved_away_is_no_longer_watched(tmp_path: Path, observers: Observers) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    _, seen = watch(drop, observers)
    (drop / "sub").rename(tmp_path / "away")
    (tmp_path / "away" / "x.png").write_bytes(b"png")
    seen.settled(drop)
    assert not any("x.png" in p for p in seen.paths()), seen.events


def test_a_folder_that_is_not_recursive_has_no_subfolders(tmp_path: Path, observers: Observers) -> None:
    (tmp_path / "early").mkdir()
    _, seen = watch(tmp_path, observers, recursive=False)
    (tmp_path / "late").mkdir()
    for folder in ("early", "late"):
        (tmp_path / folder / "x.png").write_bytes(b"png")
    seen.settled(tmp_path)
    assert all(e.kind is not EventKind.DIR_APPEARED and "x.png" not in e.path for e in seen.events), (
        seen.events
    )


def test_a_stopped_watch_posts_nothing_more(tmp_path: Path, observers: Observers) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stopped, stopped_seen = watch(tmp_path / "a", observers)
    _, seen = watch(tmp_path / "b", observers)
    stopped.stop()
    (tmp_path / "a" / "late.png").write_bytes(b"png")
    seen.settled(tmp_path / "b")
    assert stopped_seen.events == []


def test_one_thread_for_any_number_of_folders(tmp_path: Path, observers: Observers) -> None:
    before = set(threading.enumerate())
    for i in range(50):
        (tmp_path / f"f{i}").mkdir()
        watch(tmp_path / f"f{i}", observers)
    # The threads these watches started (not the process's: other tests' may still be ending): one
    # reader, which also runs the callbacks (no dispatcher thread, as watchdog 7.1.1's own loop has).
    started = [t for t in threading.enumerate() if t not in before]
    assert len(started) == 1, [t.name for t in started]


def test_a_subfolder_removed_and_made_again_is_watched(tmp_path: Path, observers: Observers) -> None:
    (tmp_path / "sub").mkdir()
    _, seen = watch(tmp_path, observers)
    held = os.open(tmp_path / "sub", os.O_RDONLY)  # keeps the old folder's own last events back
    try:
        (tmp_path / "sub").rmdir()
        (tmp_path / "sub").mkdir()
        seen.wait(EventKind.DIR_APPEARED, tmp_path / "sub")
        image = tmp_path / "sub" / "x.png"
        image.write_bytes(b"png")
        seen.wait(EventKind.FINISHED, image)
    finally:
        os.close(held)


def test_subfolders_left_to_the_start_up_scan_are_watched_as_it_reaches_them(
    tmp_path: Path, observers: Observers
) -> None:
    drop = tmp_path / "drop"
    (drop / "a" / "b").mkdir(parents=True)
    (drop / "c").mkdir()
    seen = Seen()
    folder_watch = FolderWatch(Folder(str(drop), None, True, False), seen.post, 0, observers)
    folder_watch.start(subfolders=False)
    (drop / "a" / "early.png").write_bytes(b"png")  # not watched yet: the scan will list it
    seen.settled(drop)
    assert str(drop / "a" / "early.png") not in seen.paths()
    # The scan reaches a, then a/b: each is watched before it is listed, so what comes after is seen.
    folder_watch.watch_subfolder(str(drop / "a"))
    folder_watch.watch_subfolder(str(drop / "a" / "b"))
    (drop / "a" / "b" / "late.png").write_bytes(b"png")
    seen.wait(EventKind.FINISHED, drop / "a" / "b" / "late.png")
    # A scan that stopped short: the rest of the tree is watched anyway.
    folder_watch.watch_subfolders()
    (drop / "c" / "late.png").write_bytes(b"png")
    seen.wait(EventKind.FINISHED, drop / "c" / "late.png")


def test_a_subfolder_the_scan_would_watch_past_the_watch_limit_falls_back_to_polling(
    tmp_path: Path, observers: Observers
) -> None:
    drop = tmp_path / "drop"
    (drop / "a").mkdir(parents=True)
    seen = Seen()
    folder_watch = FolderWatch(Folder(str(drop), None, True, False), seen.post, 0, observers)
    folder_watch.start(subfolders=False)
    tree = folder_watch._tree
    assert tree is not None

    def out_of_watches(path: bytes) -> int:
        raise OutOfWatches(os.fsdecode(path), 1)

    tree._add = out_of_watches  # type: ignore[method-assign,assignment]  # the kernel's ENOSPC, on cue
    folder_watch.watch_subfolder(str(drop / "a"))
    assert folder_watch.mode == "polling (inotify exhausted)"
    (drop / "a" / "polled.png").write_bytes(b"png")
    wait_for(lambda: str(drop / "a" / "polled.png") in seen.paths(), 10, "the polling observer to see it")
