"""The configured folders as the agent holds them: locked or standing by, watched, lost and found again.

For each folder: its lock (one agent per folder, `watcher.folder_lock`), its observer (`FolderWatch`),
and whether the folder itself went away. A folder another agent holds is stood by for: no watch, no
scan, its lock retried every `lock_retry` seconds, so it is taken over within seconds of the holder
stopping or dying. The agent asks `active()` for the folders the scheduler may work on, and gets back
from `apply` and `tick` the folders to scan now (newly held, or back after being lost).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from watcher.folder_lock import FolderLock
from watcher.folders import Folder
from watcher.inotify_watch import queued_events_limit
from watcher.log_fields import fields
from watcher.messages import PathEvent
from watcher.timings import Timings
from watcher.watching import FolderWatch, Observers

log = logging.getLogger("watcher")


class WatchedFolders:
    def __init__(
        self,
        post: Callable[[PathEvent], None],
        timings: Timings,
        *,
        observe: bool = True,  # False for `scan`: locks only, no observers
        rescan_seconds: float = 300.0,
    ) -> None:
        self._post = post
        self._timings = timings
        self._observe = observe
        self._observers = Observers()  # one inotify instance and one polling thread for every folder
        self.rescan_seconds = rescan_seconds
        self._folders: dict[str, Folder] = {}
        self._locks: dict[str, FolderLock] = {}
        self._unlocked: set[str] = set()  # no lock possible there (read-only, no lock support)
        self._standby: set[str] = set()
        self._watches: dict[str, FolderWatch] = {}
        self._lost: set[str] = set()
        self._suspect: set[str] = set()  # told they may be gone: looked at by the next recheck
        self._events_lost: set[str] = set()  # to list afresh at `_next_relist`
        self._next_lock_try = float("inf")
        self._next_root_check = float("inf")
        self._next_relist = float("inf")

    # ---- what the agent asks -----------------------------------------------------------------------

    @property
    def rescan_seconds(self) -> float:
        return self._observers.full_poll_every

    @rescan_seconds.setter
    def rescan_seconds(self, seconds: float) -> None:
        """Also how often a polled folder is listed whole (`watcher.polling`)."""
        self._observers.full_poll_every = seconds

    def active(self) -> tuple[Folder, ...]:
        """The folders this agent works on: held (or unlockable), in config order."""
        return tuple(f for p, f in self._folders.items() if p not in self._standby)

    def standing_by(self) -> tuple[str, ...]:
        return tuple(sorted(self._standby))

    def next_deadline(self) -> float:
        return min(self._next_lock_try, self._next_root_check, self._next_relist)

    # ---- changes -----------------------------------------------------------------------------------

    def apply(
        self, folders: Iterable[Folder], generation: int, now: float, *, subfolders_by_scan: bool = False
    ) -> list[Folder]:
        """Take on a (new) config: let go of folders no longer listed or changed, lock and watch the rest.

        Returns the folders that became active and must be scanned. With `subfolders_by_scan` (the
        agent's start), only each folder itself is watched now: its start-up scan watches each subfolder
        before listing it (`watch_of`, `FolderWatch.watch_subfolder`).
        """
        wanted = {f.path: f for f in folders}
        for path, folder in list(self._folders.items()):
            if wanted.get(path) != folder:
                self._let_go(path)
        self.set_generation(generation)  # unchanged folders: their events are current
        started = []
        for path, folder in wanted.items():
            if path not in self._folders:
                self._folders[path] = folder
                if self._take(folder, generation, now, subfolders=not subfolders_by_scan):
                    started.append(folder)
        return started

    def watch_of(self, path: str) -> FolderWatch | None:
        """The folder's inotify or polling watch (None: standing by, or not watched at all)."""
        return self._watches.get(path)

    def tick(self, now: float, generation: int) -> list[Folder]:
        """Retry stood-by locks and lost folders when due; the folders to scan now."""
        started: list[Folder] = []
        if now >= self._next_lock_try:
            self._next_lock_try = float("inf")
            for path in sorted(self._standby):
                if self._take(self._folders[path], generation, now):
                    log.info("%s: the other agent let go of this folder; taking it over", path)
                    started.append(self._folders[path])
        if now >= self._next_root_check:
            started += self.recheck_roots(now, generation)
        if now >= self._next_relist:
            started += self._relist(started)
        return started

    def set_generation(self, generation: int) -> None:
        """After the scheduler's folder set changed: events from now on are of this generation."""
        for watch in self._watches.values():
            watch.generation = generation

    def root_gone(self, folder: Folder, now: float) -> None:
        """The folder, or its lock file, may be gone: look again now (the kernel reports a folder's own
        removal late while its lock file is open, so the lock file's removal brings this on too)."""
        if self._folders.get(folder.path) != folder or folder.path in self._standby:
            return
        self._suspect.add(folder.path)
        self._next_root_check = min(self._next_root_check, now)

    def events_lost(self, path: str, now: float) -> None:
        """The kernel's inotify queue overflowed: the folder is listed afresh (by `tick`) once the burst
        that overflowed it has had a moment to land, so that a flood makes one listing, not hundreds."""
        if path in self._folders and path not in self._standby:
            self._events_lost.add(path)
            self._next_relist = min(self._next_relist, now + self._timings.overflow_rescan_delay)

    def _relist(self, already: list[Folder]) -> list[Folder]:
        self._next_relist = float("inf")
        lost, self._events_lost = self._events_lost, set()
        relist = [
            f for p, f in self._folders.items() if p in lost and p not in self._standby and f not in already
        ]
        if relist:
            log.warning("events were lost (the kernel's inotify queue overflowed, fs.inotify.max_queued_events "
                        "is %s): listing %d folders again; raise it if this recurs", queued_events_limit(),
                        len(relist))  # fmt: skip
        return relist

    def recheck_roots(self, now: float, generation: int) -> list[Folder]:
        """Watch again the folders that were deleted, replaced or moved, once the path is a folder again;
        take a new lock where the old one no longer guards the folder."""
        self._next_root_check = float("inf")
        back = []
        suspects, self._suspect = self._suspect, set()
        for path, folder in self._folders.items():
            if path in self._standby or not self._observe:
                continue
            watch = self._watches.get(path)
            lock = self._locks.get(path)
            lock_ok = lock is None or not lock.held or lock.is_current()
            if path not in self._lost and watch is not None and watch.is_current() and lock_ok:
                continue
            if not os.path.isdir(path):
                if lock is not None:
                    lock.release()  # lets the kernel report the old folder gone, and frees its name
                if path not in self._lost:
                    log.warning("%s: the watched folder was removed or moved away; waiting for it to come "
                                "back", path, extra=fields(folder=path, event="attention"))  # fmt: skip
                self._lost.add(path)
                self._next_root_check = now + self._timings.root_recheck
                continue
            if path in self._lost:
                log.info("%s: the folder is back; watching it again", path)
            elif path in suspects and watch is not None and watch.is_current():
                # The same folder, only its lock file went: take a new one, keep watching.
                if lock is not None:
                    lock.release()
                if self._try_lock(folder, now) is False:
                    self._stop_watch(path)
                continue
            self._stop_watch(path)
            self._lost.discard(path)
            if lock is not None and lock.held and not lock.is_current():
                lock.release()  # a new folder under the old name: the old lock guards nothing
            relock = lock is not None and not lock.held and path not in self._unlocked
            if relock and self._try_lock(folder, now) is False:
                continue
            self._start_watch(folder, generation)
            back.append(folder)
        return back

    def _stop_watch(self, path: str) -> None:
        watch = self._watches.pop(path, None)
        if watch is not None:
            watch.stop()

    def stop(self, join_timeout: float | None = None) -> None:
        self._observers.stop(join_timeout=join_timeout)

    def join(self, timeout: float) -> None:
        self._observers.join(timeout)

    def release_all(self) -> None:
        for lock in self._locks.values():
            lock.release()

    # ---- one folder --------------------------------------------------------------------------------

    def _take(self, folder: Folder, generation: int, now: float, *, subfolders: bool = True) -> bool:
        if self._try_lock(folder, now) is False:
            return False
        if self._observe:
            self._start_watch(folder, generation, subfolders=subfolders)
        return True

    def _try_lock(self, folder: Folder, now: float) -> bool | None:
        lock = self._locks.setdefault(folder.path, FolderLock(folder.path))
        got = lock.try_acquire()
        if got is False:
            if folder.path not in self._standby:
                log.warning("%s: another agent holds this folder (%s); standing by to take it over",
                            folder.path, os.path.join(folder.path, ".minimax-watcher.lock"),
                            extra=fields(folder=folder.path, account=folder.account, event="attention"))  # fmt: skip
            self._standby.add(folder.path)
            self._next_lock_try = min(self._next_lock_try, now + self._timings.lock_retry)
            return False
        self._standby.discard(folder.path)
        if got is None and folder.path not in self._unlocked:
            self._unlocked.add(folder.path)
            log.warning("%s: no lock file can be made here; another agent on this folder would not be "
                        "kept out", folder.path)  # fmt: skip
        return got

    def _let_go(self, path: str) -> None:
        watch = self._watches.pop(path, None)
        if watch is not None:
            watch.stop()
        lock = self._locks.pop(path, None)
        if lock is not None:
            lock.release()
        self._folders.pop(path, None)
        self._standby.discard(path)
        self._unlocked.discard(path)
        self._lost.discard(path)

    def _start_watch(self, folder: Folder, generation: int, *, subfolders: bool = True) -> None:
        watch = FolderWatch(folder, self._post, generation, self._observers)
        try:
            watch.start(subfolders=subfolders)
        except OSError as exc:
            log.error("%s: cannot watch this folder: %s; it is rescanned every %.0f s instead", folder.path,
                      exc.strerror, self.rescan_seconds)  # fmt: skip
            return
        self._watches[folder.path] = watch
        log.info(
            "watching %s (%s%s, account %s)",
            folder.path,
            watch.mode,
            ", recursive" if folder.recursive else "",
            folder.account or "default",
        )
