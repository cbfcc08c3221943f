"""The folders as the agent holds them: a folder is watched (real inotify) by the time the agent is told
to list it, and a folder whose events were lost is listed afresh once, after a short delay (injected
clock)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcher.core.folders import Folder
from watcher.core.messages import EventKind, PathEvent
from watcher.core.timings import Timings
from watcher.watch.held_folders import WatchedFolders
from watcher.watch.lock import LOCK_NAME


class Inbox:
    def __init__(self) -> None:
        self.events: list[PathEvent] = []

    def post(self, event: PathEvent) -> None:
        self.events.append(event)

    def finished(self, path: Path) -> bool:
        return any(e.kind is EventKind.FINISHED and e.path == str(path) for e in list(self.events))


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def held(inbox: Inbox) -> Iterator[WatchedFolders]:
    folders = WatchedFolders(inbox.post, Timings())
    yield folders
    folders.stop(join_timeout=5)
    folders.release_all()


def folder(path: Path) -> Folder:
    path.mkdir(exist_ok=True)
    return Folder(str(path), None, True, False)


def test_a_folder_added_by_a_reload_is_watched_with_its_subfolders_before_it_is_listed(
    tmp_path: Path, inbox: Inbox, held: WatchedFolders
) -> None:
    first = folder(tmp_path / "first")
    assert held.apply([first], 0, 0.0, subfolders_by_scan=True) == [first]
    second = folder(tmp_path / "second")
    (tmp_path / "second" / "sub").mkdir()

    # The reload: what apply returns is listed next; files made from now on must not depend on it.
    assert held.apply([first, second], 1, 1.0) == [second]
    for image in (tmp_path / "second" / "a.png", tmp_path / "second" / "sub" / "b.png"):
        image.write_bytes(b"png")
        wait_for(lambda image=image: inbox.finished(image), 30, f"an event for {image}, before any listing")


def test_at_start_each_folder_itself_is_watched_before_it_is_listed(
    tmp_path: Path, inbox: Inbox, held: WatchedFolders
) -> None:
    first = folder(tmp_path / "first")
    assert held.apply([first], 0, 0.0, subfolders_by_scan=True) == [first]
    image = tmp_path / "first" / "a.png"
    image.write_bytes(b"png")
    wait_for(lambda: inbox.finished(image), 30, "an event for a file made before the start-up scan")


def test_a_folder_that_lost_events_is_listed_again_once_after_the_delay(
    tmp_path: Path, held: WatchedFolders, caplog: pytest.LogCaptureFixture
) -> None:
    delay = Timings().overflow_rescan_delay
    first, second, third = (folder(tmp_path / name) for name in ("first", "second", "third"))
    held.apply([first, second, third], 0, 0.0)

    held.events_lost(first.path, 1.0)
    held.events_lost(second.path, 1.1)
    held.events_lost(first.path, 1.2)  # a flood overflows the queue again and again
    held.events_lost(str(tmp_path / "unknown"), 1.2)  # a folder a reload removed meanwhile
    assert held.next_deadline() == 1.0 + delay
    assert held.tick(1.0 + delay - 0.01, 0) == []
    with caplog.at_level(logging.WARNING):
        assert held.tick(1.0 + delay, 0) == [first, second]
    said = [m for m in caplog.messages if "events were lost" in m]
    assert len(said) == 1 and "listing 2 folders again" in said[0], said
    assert held.next_deadline() > 1.0 + delay
    assert held.tick(5.0, 0) == []


def test_a_folder_removed_while_its_lock_is_retried_is_lost_not_worked_on_unwatched(
    tmp_path: Path, held: WatchedFolders, caplog: pytest.LogCaptureFixture
) -> None:
    drop = folder(tmp_path / "drop")
    (tmp_path / "drop" / LOCK_NAME).mkdir()  # the lock name taken by a directory: the folder is blocked
    held.apply([drop], 0, 0.0)
    assert held.blocked() and held.active() == ()
    shutil.rmtree(tmp_path / "drop")  # rm -r: the lock name goes first, then the folder

    retry = Timings().lock_retry
    with caplog.at_level(logging.INFO):
        held.tick(retry, 0)
        held.tick(retry, 0)
    assert "removed or moved away" in caplog.text
    assert "working on this folder" not in caplog.text and "cannot watch" not in caplog.text
    (tmp_path / "drop").mkdir()
    assert held.tick(retry + Timings().root_recheck, 0) == [drop]
    assert held.watch_of(drop.path) is not None
