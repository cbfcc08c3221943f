"""The configured folders as the agent holds them: locked or stood by, watched, lost and found again.

The loop asks `active()` for the folders the scheduler may work on, and gets from `apply` and `tick` the
folders to scan now. See docs/architecture.md, 'One folder, one agent'.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from watcher.core.folders import Folder
from watcher.core.messages import PathEvent
from watcher.core.timings import Timings
from watcher.disk import descriptors
from watcher.disk.descriptors import FOLDER_RESERVE, is_out_of_descriptors
from watcher.log_fields import account_shown, say
from watcher.watch.limits import queued_events_limit
from watcher.watch.lock import LOCK_NAME, FolderLock, FolderLocks, LockState
from watcher.watch.observers import FolderWatch, Observers

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
        self._standby: dict[str, str] = {}  # another agent holds it: who
        self._blocked: dict[str, str] = {}  # its lock name is not a lock file: what is wrong
        self._watches: dict[str, FolderWatch] = {}
        self._lost: set[str] = set()
        self._suspect: set[str] = set()  # told they may be gone: looked at by the next recheck
        self._events_lost: set[str] = set()  # to list afresh at `_next_relist`
        self._next_lock_try = float("inf")
        self._next_root_check = float("inf")
        # Held locks are looked at this often too: a lock file replaced from another NFS client makes
        # no inotify event here.
        self._next_lock_check = float("inf")
        # Folders left unwatched for want of file descriptors, tried again every descriptor_retry.
        self._no_descriptors: set[str] = set()
        self._next_descriptor_try = float("inf")
        self._told_short = 0  # how many were waiting when it was last said
        self._spare: int | None = None  # descriptors left for folders taken in this pass
        self._next_relist = float("inf")

    # ---- what the agent asks -----------------------------------------------------------------------

    @property
    def rescan_seconds(self) -> float:
        return self._observers.full_poll_every

    @rescan_seconds.setter
    def rescan_seconds(self, seconds: float) -> None:
        """Also how often a polled folder is listed whole (`watcher.watch.polling`)."""
        self._observers.full_poll_every = seconds

    def active(self) -> tuple[Folder, ...]:
        """The folders this agent works on: held (or unlockable), in config order."""
        return tuple(f for p, f in self._folders.items() if not self._waiting(p))

    def standing_by(self) -> dict[str, str]:
        """Folders another agent holds, with who holds them."""
        return dict(sorted(self._standby.items()))

    def blocked(self) -> dict[str, str]:
        """Folders not worked on because their lock name is taken by something else, with what it is."""
        return dict(sorted(self._blocked.items()))

    def locks(self) -> FolderLocks:
        return FolderLocks(tuple(self._folders), self.standing_by(), self.blocked())

    def _waiting(self, path: str) -> bool:
        return path in self._standby or path in self._blocked or path in self._no_descriptors

    def next_deadline(self) -> float:
        return min(
            self._next_lock_try,
            self._next_root_check,
            self._next_lock_check,
            self._next_descriptor_try,
            self._next_relist,
        )

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
        self._next_lock_check = min(self._next_lock_check, now + self._timings.lock_check)
        for path, folder in list(self._folders.items()):
            if wanted.get(path) != folder:
                self._let_go(path)
        self.set_generation(generation)  # unchanged folders: their events are current
        started = []
        self._spare = descriptors.spare()
        for path, folder in wanted.items():
            if path not in self._folders:
                self._folders[path] = folder
                if self._take(folder, generation, now, subfolders=not subfolders_by_scan):
                    started.append(folder)
        self._tell_shortage()
        return started

    def watch_of(self, path: str) -> FolderWatch | None:
        """The folder's inotify or polling watch (None: standing by, or not watched at all)."""
        return self._watches.get(path)

    def tick(self, now: float, generation: int) -> list[Folder]:
        """Retry stood-by and blocked locks and lost folders when due; the folders to scan now."""
        started: list[Folder] = []
        if now >= self._next_lock_try:
            self._next_lock_try = float("inf")
            for path in sorted({*self._standby, *self._blocked}):
                stood_by = path in self._standby
                if self._take(self._folders[path], generation, now):
                    if stood_by:
                        log.info("%s: the other agent let go of this folder; taking it over", path)
                    else:
                        log.info("%s: its lock file is in order again; working on this folder", path)
                    started.append(self._folders[path])
        if now >= self._next_lock_check:
            self._next_lock_check = now + self._timings.lock_check
            for path, lock in self._locks.items():
                if self._observe and lock.held and not lock.is_current():
                    self._suspect.add(path)
                    self._next_root_check = now
        if now >= self._next_descriptor_try:
            self._next_descriptor_try = float("inf")
            descriptors.raise_limit()  # the hard limit may have been raised meanwhile (prlimit)
            self._spare = descriptors.spare()
            for path in sorted(self._no_descriptors):
                if self._take(self._folders[path], generation, now):
                    started.append(self._folders[path])
            self._tell_shortage()
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
        if self._folders.get(folder.path) != folder or self._waiting(folder.path):
            return
        self._suspect.add(folder.path)
        self._next_root_check = min(self._next_root_check, now)

    def events_lost(self, path: str, now: float) -> None:
        """The kernel's inotify queue overflowed: the folder is listed afresh (by `tick`) once the burst
        that overflowed it has had a moment to land, so that a flood makes one listing, not hundreds."""
        if path in self._folders and not self._waiting(path):
            self._events_lost.add(path)
            self._next_relist = min(self._next_relist, now + self._timings.overflow_rescan_delay)

    def _relist(self, already: list[Folder]) -> list[Folder]:
        self._next_relist = float("inf")
        lost, self._events_lost = self._events_lost, set()
        relist = [
            f for p, f in self._folders.items() if p in lost and not self._waiting(p) and f not in already
        ]
        if relist:
            log.warning(
                "events were lost (the kernel's inotify queue overflowed, fs.inotify.max_queued_events "
                "is %s): listing %d folders again; raise it if this recurs",
                queued_events_limit(),
                len(relist),
            )
        return relist

    def recheck_roots(self, now: float, generation: int) -> list[Folder]:
        """Watch again the folders that were deleted, replaced or moved, once the path is a folder again;
        take a new lock where the old one no longer guards the folder."""
        self._next_root_check = float("inf")
        back = []
        suspects, self._suspect = self._suspect, set()
        for path, folder in self._folders.items():
            if self._waiting(path) or not self._observe:
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
                    say(
                        log.warning,
                        "%s: the watched folder was removed or moved away; waiting for it to come back",
                        path,
                        folder=path,
                        event="attention",
                    )
                self._lost.add(path)
                self._next_root_check = now + self._timings.root_recheck
                continue
            if path in self._lost:
                log.info("%s: the folder is back; watching it again", path)
            elif path in suspects and watch is not None and watch.is_current():
                # The same folder, only its lock file went: take a new one, keep watching.
                if lock is not None:
                    lock.release()
                if not self._try_lock(folder, now):
                    self._stop_watch(path)
                continue
            self._stop_watch(path)
            self._lost.discard(path)
            if lock is not None and lock.held and not lock.is_current():
                lock.release()  # a new folder under the old name: the old lock guards nothing
            relock = lock is not None and not lock.held and path not in self._unlocked
            if relock and not self._try_lock(folder, now):
                continue
            if self._watch(folder, generation, now):
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
        if not self._room_for_a_folder():
            self._short_of_descriptors(folder.path, now)
            return False
        if not self._try_lock(folder, now):
            return False
        if self._observe and not self._watch(folder, generation, now, subfolders=subfolders):
            return False
        self._no_descriptors.discard(folder.path)
        return True

    def _watch(self, folder: Folder, generation: int, now: float, *, subfolders: bool = True) -> bool:
        try:
            self._start_watch(folder, generation, subfolders=subfolders)
        except OSError as exc:
            if not is_out_of_descriptors(exc):
                raise
            lock = self._locks.get(folder.path)
            if lock is not None:
                lock.release()
            self._short_of_descriptors(folder.path, now)
            return False
        return True

    # ---- out of descriptors ------------------------------------------------------------------------

    def _room_for_a_folder(self) -> bool:
        """Whether a folder may take a descriptor for its lock and still leave FOLDER_RESERVE free."""
        if self._spare is None:
            return True  # no limit, or no way to count: EMFILE is caught where it happens
        if self._spare <= FOLDER_RESERVE:
            return False
        self._spare -= 1
        return True

    def _short_of_descriptors(self, path: str, now: float) -> None:
        self._no_descriptors.add(path)
        self._next_descriptor_try = min(self._next_descriptor_try, now + self._timings.descriptor_retry)

    def _tell_shortage(self) -> None:
        """One line for every folder left out at once: how many, the limit, and what to set."""
        waiting = len(self._no_descriptors)
        if waiting > self._told_short:
            soft = descriptors.limit()
            needed = (soft or 0) + waiting
            suggested = max(65536, 2 * needed)
            say(
                log.error,
                "%d of %d folders are not watched: the agent may open %s file descriptors, and the folders "
                "it watches (one each) and its own work (%d kept) need them all; it goes on with the other "
                "%d and tries again every %.0f s. Raise the limit to at least %d: LimitNOFILE=%d in the "
                "service's unit (systemctl edit minimax-watcher), or ulimit -n %d before starting it",
                waiting,
                len(self._folders),
                soft if soft is not None else "no more",
                FOLDER_RESERVE,
                len(self.active()),
                self._timings.descriptor_retry,
                needed,
                suggested,
                suggested,
                event="attention",
            )
        elif waiting == 0 and self._told_short:
            log.info("every folder is watched now: file descriptors suffice")
        self._told_short = waiting

    def _try_lock(self, folder: Folder, now: float) -> bool:
        """Whether this agent may work on the folder now (held, or no lock possible there); logs each
        change of what keeps it from doing so, once."""
        path = folder.path
        lock = self._locks.setdefault(path, FolderLock(path))
        try:
            got = lock.try_acquire()
        except OSError as exc:
            if not is_out_of_descriptors(exc):
                raise
            self._short_of_descriptors(path, now)
            return False
        if got.state is not LockState.HELD and not os.path.isdir(path):
            # The folder itself went (rm -r takes the lock file first, the folder a moment later): not a
            # lock taken or refused, a folder lost, which the root check says and waits out.
            self._standby.pop(path, None)
            self._blocked.pop(path, None)
            self._suspect.add(path)
            self._next_root_check = now
            return False
        if got.state is LockState.STANDBY:
            if self._standby.get(path) != got.detail:
                say(
                    log.warning,
                    "%s: another agent holds this folder (%s: %s); standing by to take it over",
                    path,
                    os.path.join(path, LOCK_NAME),
                    got.detail,
                    folder=path,
                    account=folder.account,
                    event="attention",
                )
            self._blocked.pop(path, None)
            self._standby[path] = got.detail
        elif got.state is LockState.BLOCKED:
            if self._blocked.get(path) != got.detail:
                say(
                    log.error,
                    "%s: cannot hold this folder: %s; nothing is uploaded from it until then "
                    "(looked at again every %.0f s)",
                    path,
                    got.detail,
                    self._timings.lock_retry,
                    folder=path,
                    account=folder.account,
                    event="attention",
                )
            self._standby.pop(path, None)
            self._blocked[path] = got.detail
        else:
            self._standby.pop(path, None)
            self._blocked.pop(path, None)
            if got.state is LockState.HELD:
                self._unlocked.discard(path)
            elif path not in self._unlocked:
                self._unlocked.add(path)
                log.warning("%s: %s; another agent on this folder would not be kept out", path, got.detail)
            return True
        self._next_lock_try = min(self._next_lock_try, now + self._timings.lock_retry)
        return False

    def _let_go(self, path: str) -> None:
        watch = self._watches.pop(path, None)
        if watch is not None:
            watch.stop()
        lock = self._locks.pop(path, None)
        if lock is not None:
            lock.release()
        self._folders.pop(path, None)
        self._standby.pop(path, None)
        self._blocked.pop(path, None)
        self._unlocked.discard(path)
        self._lost.discard(path)
        self._no_descriptors.discard(path)

    def _start_watch(self, folder: Folder, generation: int, *, subfolders: bool = True) -> None:
        watch = FolderWatch(folder, self._post, generation, self._observers)
        try:
            watch.start(subfolders=subfolders)
        except OSError as exc:
            if is_out_of_descriptors(exc):
                raise
            log.error(
                "%s: cannot watch this folder: %s; it is rescanned every %.0f s instead",
                folder.path,
                exc.strerror,
                self.rescan_seconds,
            )
            return
        self._watches[folder.path] = watch
        log.info(
            "watching %s (%s%s, %s)",
            folder.path,
            watch.mode,
            ", recursive" if folder.recursive else "",
            account_shown(folder.account),
        )
