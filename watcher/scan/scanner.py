"""The scanner thread: walks folders when asked and reports what it found to the agent, in batches.

Files the index vouches for are not reported and their sidecars not read. See docs/architecture.md,
'Finding files and knowing them'.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder
from watcher.core.messages import FileState, FoundFile, ScanBatch, ScanFinished
from watcher.core.signature import COARSE_CLOCK_SLACK
from watcher.core.timings import Timings
from watcher.disk.moved_failures import moved_failures
from watcher.disk.mover import Mover
from watcher.log_fields import say
from watcher.scan.helper import IN_FLIGHT as HELPER_IN_FLIGHT
from watcher.scan.helper import SharedHelper, WalkHelper
from watcher.scan.inventory import (
    HELPER_AFTER_DIRECTORIES,
    HELPER_AFTER_ENTRIES,
    DirectoryMemo,
    walk_candidates,
)
from watcher.state.index import HistoryIndex

log = logging.getLogger("watcher")

SCAN_BATCH = 500
# Batches posted but not yet taken in by the agent: a scan of 100,000 files never queues them all.
BATCHES_IN_FLIGHT = 4
# Walks of a folder's subfolders waiting their turn; past this, the folder is walked whole instead (a
# dropper making and removing directories faster than they are walked queues nothing more).
SUBFOLDER_SCANS = 64


class SubfolderWatch(Protocol):
    """A folder's watch that leaves its subfolders to the start-up scan (`watcher.watch.observers.FolderWatch`)."""

    def watch_subfolder(self, path: str) -> None: ...

    def watch_subfolders(self) -> None: ...


@dataclass(frozen=True)
class _Request:
    folder: Folder
    root: str
    initial: bool
    generation: int
    periodic: bool = False
    watch: SubfolderWatch | None = None  # to watch each subfolder before it is listed

    @property
    def key(self) -> tuple[Folder, str, bool, int]:
        """Requests with the same key walk the same tree the same way: one waiting is enough."""
        return self.folder, self.root, self.periodic, self.generation

    @property
    def subfolder(self) -> bool:
        return self.root != self.folder.path


class Scanner:
    def __init__(
        self,
        post: Callable[[Any], None],
        history: HistoryIndex,
        still_starting: Callable[[], None] | None = None,
        timings: Timings | None = None,
        owner: ApiOwner | None = None,
        mover: Mover | None = None,
        awaits_video: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self._post = post
        self._awaits_video = awaits_video  # a done image whose done_dir move waits for its video
        self._lost_told: dict[str, float] = {}  # folder → when its lost events were last said (loop thread)
        self._history = history
        self._owner = owner  # whose sidecars count as done (`watcher.core.api_owner`)
        self._mover = mover or Mover(None)
        # Told, every `start_progress` seconds of a start-up scan, that it is moving (sd_notify).
        self._still_starting = still_starting
        self._progress_every = (timings or Timings()).start_progress
        self._last_progress = 0.0
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._upcoming: deque[_Request] = deque()  # taken from `_requests`, not yet walked
        # Requests asked for and not yet walked (but start-up ones, each asked once): asking again
        # adds nothing, so what waits is bounded by the folders, not by the events that asked.
        self._queued_lock = threading.Lock()
        self._queued: set[tuple[Folder, str, bool, int]] = set()
        self._subfolders_queued: dict[str, int] = {}
        self._last_walked = ""  # the folder of the walk before
        self._slots = threading.Semaphore(BATCHES_IN_FLIGHT)
        self._stopping = False
        # Sidecar temporaries older than this process are leftovers of a crash; newer ones are ours.
        # (No process crashed 50 ms before this one started.)
        self._started = time.time() - COARSE_CLOCK_SLACK
        self._memo = DirectoryMemo()
        self._turns: dict[str, int] = {}
        # One start-up helper for the start-up scans of every folder (`watcher.scan.helper`).
        index_file = history.file
        self._helper = SharedHelper(lambda: WalkHelper.start(index_file) if index_file else None)
        self._listed_at_start = 0  # entries the start-up scans have listed so far

    def start(self) -> None:
        threading.Thread(target=self._run, name="scanner", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self._requests.put(None)
        self._slots.release()  # a walk waiting for the agent, which no longer reads, may end

    def batch_taken(self) -> None:
        """The agent has handled a ScanBatch: the scanner may post another."""
        self._slots.release()

    def scan(
        self,
        folder: Folder,
        root: str | None = None,
        *,
        initial: bool = False,
        generation: int = 0,
        periodic: bool = False,
        watch: SubfolderWatch | None = None,
    ) -> None:
        """Walk `root` (default: the whole folder); `initial` also removes stale sidecar temporaries.

        `generation` is the config generation `folder` belongs to; the results carry it. A `periodic`
        rescan passes over the directories unchanged since it last listed them (`DirectoryMemo`);
        every other scan lists every directory. With a `watch` that left the subfolders to this scan,
        each one is watched before it is listed; if the walk fails, the rest are watched anyway.
        """
        request = _Request(folder, root or folder.path, initial, generation, periodic, watch)
        if not initial:
            with self._queued_lock:
                if request.subfolder and self._subfolders_queued.get(folder.path, 0) >= SUBFOLDER_SCANS:
                    request = _Request(folder, folder.path, False, generation)
                if request.key in self._queued:
                    return
                self._queued.add(request.key)
                if request.subfolder:
                    self._subfolders_queued[folder.path] = self._subfolders_queued.get(folder.path, 0) + 1
        self._requests.put(request)

    def events_lost(self, folder: Folder, generation: int, now: float) -> None:
        """More changes came at once in `folder` than the agent's inbox keeps: a walk of it finds them."""
        if now - self._lost_told.get(folder.path, -3600.0) >= 60.0:  # a churn overflows every turn
            self._lost_told[folder.path] = now
            log.warning(
                "%s: more changes at once than the agent keeps track of; the folder is walked to find "
                "them (said once a minute)",
                folder.path,
            )
        self.scan(folder, folder.path, generation=generation)

    def _taken(self, request: _Request) -> None:
        """Its walk starts: a change from now on needs a walk of its own."""
        if request.initial:
            return
        with self._queued_lock:
            self._queued.discard(request.key)
            if request.subfolder:
                left = self._subfolders_queued.pop(request.folder.path, 1) - 1
                if left > 0:
                    self._subfolders_queued[request.folder.path] = left

    def _run(self) -> None:
        try:
            while (request := self._next_request()) is not None:
                self._taken(request)
                if request.initial:
                    self._share_upcoming()
                try:
                    self._walk(request)
                except Exception:
                    if request.watch is not None:
                        request.watch.watch_subfolders()
                    say(
                        log.exception,
                        "scan of %s failed; it is retried at the next rescan",
                        request.root,
                        folder=request.folder.path,
                        account=request.folder.account,
                    )
                    if request.initial:
                        self._post(ScanFinished(request.folder, request.root, {}, True, request.generation))
                if not any(upcoming.initial for upcoming in self._upcoming):
                    self._helper.close()  # the start-up scans are over: rescans never share
        finally:
            self._helper.close()

    def _next_request(self) -> _Request | None:
        """The next request, having taken in every one already asked for (to share them ahead)."""
        try:
            while True:
                taken = self._requests.get(block=not self._upcoming)
                if taken is None or self._stopping:
                    return None
                self._upcoming.append(taken)
        except queue.Empty:
            pass
        return self._in_turn()

    def _in_turn(self) -> _Request:
        """The next walk, folders in turn: after one of a folder, another folder's if one waits (start-up
        scans keep the order asked: the helper takes them from the back)."""
        head = self._upcoming[0]
        if not head.initial and head.folder.path == self._last_walked:
            for index, other in enumerate(self._upcoming):
                if not other.initial and other.folder.path != self._last_walked:
                    del self._upcoming[index]
                    self._last_walked = other.folder.path
                    return other
        self._last_walked = head.folder.path
        return self._upcoming.popleft()

    def _share_upcoming(self) -> None:
        """Hand the helper the folders whose start-up scans wait their turn, from the last one back,
        while this thread walks from the first (flat folders have no subfolders to share)."""
        helper = self._helper.running
        if helper is None:
            if sum(1 for upcoming in self._upcoming if upcoming.initial) < HELPER_AFTER_DIRECTORIES:
                return
            # Worth its start (about 0.1 s of the other core) once thousands of files are done: that
            # many listed already, or known to the index (a second start is told before any listing).
            if not (
                self._listed_at_start >= HELPER_AFTER_ENTRIES
                or self._history.holds_at_least(HELPER_AFTER_ENTRIES)
            ):
                return
            helper = self._helper.start()
        for upcoming in reversed(self._upcoming):
            if helper is None or not helper.alive or helper.in_flight >= HELPER_IN_FLIGHT:
                return
            folder = upcoming.folder
            if upcoming.initial and not helper.holds(folder.path, upcoming.root):
                if upcoming.watch is not None:
                    upcoming.watch.watch_subfolder(upcoming.root)  # before the helper lists it
                helper.send(folder.path, folder.account or "", upcoming.root)

    def _moved_at_start(self, request: _Request, found: FoundFile) -> bool:
        """A file with its record that should be in done_dir / failed_dir: a stop came between the
        record and the move, or cut a move short before the file reached its new name (`Mover.recover`
        finished the others). The start-up scan moves it; later scans let it be."""
        folder = request.folder
        assert found.record is not None
        done = found.state is FileState.DONE
        dest = folder.done_dir if done else folder.failed_dir
        if not request.initial or dest is None or found.state is FileState.PENDING:
            return False
        if done and self._awaits_video(found.path):
            return False  # it moves once its video has ended (SPEC §8)
        moved = self._mover.move_with_record(found.path, folder.path, dest, found.record, done=done)
        if isinstance(moved, str):  # else a worker is moving it, or it cannot move (said)
            record, setting = ("sidecar", "done_dir") if done else ("error record", "failed_dir")
            log.info(
                "%s: moved to %s with its %s (recorded before %s was set, or before a stop)",
                found.path,
                moved,
                record,
                setting,
            )
        return moved is not False

    def _post_batch(self, request: _Request, files: list[FoundFile]) -> None:
        self._slots.acquire()
        self._post(ScanBatch(request.folder, files, request.generation))

    def _listed(
        self, request: _Request, listings: dict[str, set[str]], directory: str, names: Collection[str]
    ) -> None:
        listings.setdefault(directory, set())
        if request.initial:
            self._listed_at_start += len(names)
        if request.initial and self._still_starting is not None:
            now = time.monotonic()
            if now - self._last_progress >= self._progress_every:
                self._last_progress = now
                self._still_starting()

    def _turn(self, request: _Request) -> int | None:
        if not request.periodic:
            return None
        self._turns[request.root] = self._turns.get(request.root, -1) + 1
        return self._turns[request.root]

    def _walk(self, request: _Request) -> None:
        folder = request.folder
        batch: list[FoundFile] = []
        listings: dict[str, set[str]] = {}
        unlisted: set[str] = set()
        walk = walk_candidates(
            folder.path,
            folder.recursive,
            folder.account,
            start=request.root,
            admits=folder.admits,
            known_in=self._history.known_in,
            on_vanished=self._history.forget,
            remove_temporaries_before=self._started if request.initial else None,
            on_listing=lambda directory, names: self._listed(request, listings, directory, names),
            memo=self._memo,
            turn=self._turn(request),
            on_unchanged=unlisted.add,
            helper=self._helper if request.initial else None,
            before_listing=request.watch.watch_subfolder if request.watch is not None else None,
            owner=self._owner,
        )
        for found in walk:
            if folder.move_dirs and found.record is not None and self._moved_at_start(request, found):
                continue
            if found.state is not FileState.DONE:  # the index keeps the done ones; memory, not names
                directory, _, name = found.path.rpartition("/")
                listings.setdefault(directory, set()).add(name)
            batch.append(found)
            if len(batch) >= SCAN_BATCH:
                self._post_batch(request, batch)
                batch = []
            if self._stopping:
                return
        if batch:
            self._post_batch(request, batch)
        if not request.subfolder:  # directories that went are not remembered for ever
            self._memo.keep_only(request.root, listings.keys() | unlisted)
        # Failures moved to failed_dir still need someone: the metrics count them (status lists them).
        moved = None if request.subfolder else sum(1 for _ in moved_failures(folder))
        finished = ScanFinished(
            folder, request.root, listings, request.initial, request.generation, frozenset(unlisted), moved
        )
        self._post(finished)
