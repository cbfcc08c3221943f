"""The kernel's inotify news turned into the agent's facts, with a real inotify instance and real folders:
what each event means, which are dropped as the buffer is read, which subfolders are watched, and a
folder's watches made again after the kernel's queue overflowed. (Through `FolderWatch`: test_observers.)"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcher.core.folders import Folder
from watcher.core.messages import EventKind
from watcher.watch.inotify import IN, Inotify, TreeWatch, file_event_kind, subfolders, worth_a_look
from watcher.watch.lock import LOCK_NAME


@pytest.mark.parametrize(
    ("mask", "kind"),
    [
        (IN.IN_CREATE, EventKind.WRITE),
        (IN.IN_MODIFY, EventKind.WRITE),
        (IN.IN_CLOSE_WRITE, EventKind.FINISHED),
        (IN.IN_MOVED_TO, EventKind.FINISHED),
        (IN.IN_MOVED_FROM, EventKind.DELETED),
        (IN.IN_DELETE, EventKind.DELETED),
        (IN.IN_ATTRIB, EventKind.ATTRIB),
        (IN.IN_DELETE_SELF, None),
    ],
)
def test_what_a_file_event_means(mask: int, kind: EventKind | None) -> None:
    assert file_event_kind(mask) is kind


def test_dot_names_are_dropped_except_the_lock_file() -> None:
    assert not worth_a_look(b".a.png.json.0123abcd.tmp")
    assert not worth_a_look(b".cache")
    assert worth_a_look(LOCK_NAME.encode())
    assert worth_a_look(b"a.png")


def test_a_record_matters_only_when_it_goes() -> None:
    for made in (IN.IN_CREATE, IN.IN_MOVED_TO, IN.IN_CLOSE_WRITE, IN.IN_MODIFY, IN.IN_ATTRIB):
        assert not worth_a_look(b"a.png.json", made)
        assert not worth_a_look(b"a.png.error.json", made)
    assert worth_a_look(b"a.png.json", IN.IN_DELETE)
    assert worth_a_look(b"a.png.error.json", IN.IN_MOVED_FROM)
    assert worth_a_look(b"renders.json", IN.IN_CREATE | IN.IN_ISDIR)  # a folder named so is walked


def test_subfolders_are_those_the_agent_looks_into_each_before_what_is_below_it(tmp_path: Path) -> None:
    for sub in ("a", "a/b", "a/b/c", "d", ".hidden", ".hidden/x", "a/.git"):
        (tmp_path / sub).mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "file.png").write_bytes(b"png")
    found = [os.fsdecode(p) for p in subfolders(os.fsencode(tmp_path))]
    assert sorted(found) == sorted(str(tmp_path / s) for s in ("a", "a/b", "a/b/c", "d"))
    assert (
        found.index(str(tmp_path / "a"))
        < found.index(str(tmp_path / "a/b"))
        < found.index(str(tmp_path / "a/b/c"))
    )
    assert list(subfolders(os.fsencode(tmp_path / "gone"))) == []


class Told:
    """What a `TreeWatch` told its folder (on the reader thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: list[tuple[EventKind, str]] = []
        self.appeared: list[str] = []
        self.gone = 0
        self.lost = 0
        self.exhausted: list[OSError] = []

    def file(self, kind: EventKind, path: bytes) -> None:
        with self._lock:
            self.files.append((kind, os.fsdecode(path)))

    def directory_appeared(self, path: bytes) -> None:
        with self._lock:
            self.appeared.append(os.fsdecode(path))

    def root_gone(self) -> None:
        self.gone += 1

    def events_lost(self) -> None:
        self.lost += 1

    def wait(self, kind: EventKind, path: Path) -> None:
        wait_for(lambda: (kind, str(path)) in self.files, 5, f"{kind} for {path}; told {self.files}")


@pytest.fixture
def inotify() -> Iterator[Inotify]:
    shared = Inotify()
    shared.start()
    yield shared
    shared.stop()
    shared.join(5)


def tree_watch(inotify: Inotify, path: Path, told: Told, *, recursive: bool = True) -> TreeWatch:
    return TreeWatch(inotify, Folder(str(path), None, recursive, False), told, told.exhausted.append)


def test_the_agents_own_temporaries_and_records_being_made_never_reach_the_folder(
    tmp_path: Path, inotify: Inotify
) -> None:
    told = Told()
    tree = tree_watch(inotify, tmp_path, told)
    tree.start()
    (tmp_path / ".a.png.json.0123abcd.tmp").write_text("{}")
    (tmp_path / ".a.png.json.0123abcd.tmp").rename(tmp_path / "a.png.json")
    (tmp_path / "a.png").write_bytes(b"png")
    told.wait(EventKind.FINISHED, tmp_path / "a.png")
    (tmp_path / "a.png.json").unlink()
    told.wait(EventKind.DELETED, tmp_path / "a.png.json")
    assert {path for _, path in told.files} == {str(tmp_path / "a.png"), str(tmp_path / "a.png.json")}
    assert [kind for kind, path in told.files if path.endswith(".json")] == [EventKind.DELETED]
    tree.stop()


def test_after_an_overflow_the_tree_is_watched_as_it_is_now_and_the_folder_told(
    tmp_path: Path, inotify: Inotify
) -> None:
    (tmp_path / "sub").mkdir()
    told = Told()
    tree = tree_watch(inotify, tmp_path, told)
    tree.start(subfolders=False)  # as if the subfolder's making had been among the lost events
    (tmp_path / "sub" / "before.png").write_bytes(b"png")
    (tmp_path / "marker.png").write_bytes(b"png")
    told.wait(EventKind.FINISHED, tmp_path / "marker.png")
    assert not any("before.png" in path for _, path in told.files), "the subfolder was not watched"
    tree.on_queue_overflow()
    tree.on_events_lost()
    assert told.lost == 1, "the folder is told to list itself afresh"
    (tmp_path / "sub" / "after.png").write_bytes(b"png")
    told.wait(EventKind.FINISHED, tmp_path / "sub" / "after.png")
    tree.stop()


def test_a_stopped_tree_is_not_watched_again_at_an_overflow(tmp_path: Path, inotify: Inotify) -> None:
    told = Told()
    tree = tree_watch(inotify, tmp_path, told)
    tree.start()
    tree.stop()
    tree.on_queue_overflow()
    (tmp_path / "a.png").write_bytes(b"png")
    other = Told()
    sentinel_watch = tree_watch(inotify, tmp_path, other)
    sentinel_watch.start()
    (tmp_path / "b.png").write_bytes(b"png")
    other.wait(EventKind.FINISHED, tmp_path / "b.png")  # the kernel queues in order: a.png's came first
    assert told.files == []
    sentinel_watch.stop()


def test_the_folder_itself_going_is_told_once_and_subfolders_are_not_announced_when_not_recursive(
    tmp_path: Path, inotify: Inotify
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    told = Told()
    tree = tree_watch(inotify, drop, told, recursive=False)
    tree.start()
    (drop / "sub").mkdir()
    (drop / "a.png").write_bytes(b"png")
    told.wait(EventKind.FINISHED, drop / "a.png")
    assert told.appeared == []
    drop.rename(tmp_path / "moved")
    wait_for(lambda: told.gone, 5, "the folder's going")
    assert told.gone == 1
    tree.stop()
