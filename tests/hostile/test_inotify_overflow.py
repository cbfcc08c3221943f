"""A dropper overflows the kernel's inotify queue (fs.inotify.max_queued_events) on purpose: writes faster
than the agent reads. Events are lost; the agent must say so in one line, watch the tree as it is now and
list each folder afresh, never log a traceback (watchdog 7.1.1 calls `on_events_lost` after
`on_queue_overflow`, which the watches must answer).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from watcher.core.folders import Folder
from watcher.core.messages import EventKind, PathEvent
from watcher.emulator import Emulator
from watcher.watch.limits import queued_events_limit
from watcher.watch.observers import FolderWatch, Observers

pytestmark = pytest.mark.hostile


class BlockingPost:
    """The agent's inbox as the watches see it, able to hold the inotify reader thread in its first
    callback: the kernel's queue then fills up while nothing reads it, however fast the machine is."""

    def __init__(self) -> None:
        self.events: list[PathEvent] = []
        self.holding = threading.Event()
        self.released = threading.Event()

    def post(self, event: PathEvent) -> None:
        self.events.append(event)
        if not self.released.is_set():
            self.holding.set()
            self.released.wait(60)

    def lost(self) -> set[str]:
        return {e.path for e in list(self.events) if e.kind is EventKind.EVENTS_LOST}

    def finished(self, path: Path) -> bool:
        return any(e.kind is EventKind.FINISHED and e.path == str(path) for e in list(self.events))


def test_an_overflowed_queue_makes_each_folder_relisted_and_rewatched_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limit = queued_events_limit()
    assert limit is not None, "no /proc/sys/fs/inotify/max_queued_events"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    inbox = BlockingPost()
    observers = Observers()
    watches = [
        FolderWatch(Folder(str(path), None, True, False), inbox.post, 0, observers)
        for path in (first, second)
    ]
    try:
        for folder_watch in watches:
            folder_watch.start()
        caplog.set_level(logging.WARNING)
        a = os.open(first / "a.png", os.O_WRONLY | os.O_CREAT, 0o644)
        b = os.open(first / "b.png", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            wait_for(inbox.holding.is_set, 30, "the reader to be held in its first callback")
            # Writes to two files in turn: the kernel merges an event only with the same one just before.
            for _ in range(limit // 2 + 10):
                os.write(a, b"x")
                os.write(b, b"y")
        finally:
            os.close(a)
            os.close(b)
        # Made while the queue is full: its creation is among the events lost.
        (first / "made-meanwhile").mkdir()
        inbox.released.set()

        wait_for(
            lambda: inbox.lost() == {str(first), str(second)}, 30, f"both folders told; got {inbox.lost()}"
        )
        late = first / "made-meanwhile" / "late.png"
        late.write_bytes(png_bytes(1))
        wait_for(lambda: inbox.finished(late), 30, "an event from the subfolder made during the overflow")
    finally:
        inbox.released.set()
        for folder_watch in watches:
            folder_watch.stop()
        observers.stop()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to shrink the kernel's inotify queue for the agent")
def test_a_flood_that_overflows_the_agents_queue_is_found_by_a_relisting_not_a_traceback(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    setting = Path("/proc/sys/fs/inotify/max_queued_events")
    saved = setting.read_text()
    setting.write_text("16\n")  # applies to inotify instances made from now on: the agent's
    try:
        agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])  # rescan_seconds stays 300
    finally:
        setting.write_text(saved)
    images = [drop / f"flood-{i:03}.png" for i in range(200)]
    # The agent is stopped while the flood lands, so its 16-event queue overflows however fast it reads
    # (a fast reader on an idle core once kept up, and nothing was lost to find).
    agent.signal(signal.SIGSTOP)
    try:
        for i, image in enumerate(images):
            image.write_bytes(png_bytes(900 + i, size=8))
    finally:
        agent.signal(signal.SIGCONT)

    wait_for(lambda: "events were lost" in agent.log(), 30, "the agent to say events were lost")
    for image in images:
        wait_sidecar(image, timeout=60)
    assert len(emulator.uploads) == len(images)
    assert "Traceback" not in agent.log()
