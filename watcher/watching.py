"""Filesystem observers: watchdog events turned into the few facts the agent cares about.

Two observers for all folders (`Observers`): one inotify instance where the kernel delivers events,
one polling observer where `polling: true` (NFS, SMB, FUSE); each folder is a watch on one of them
(`FolderWatch`). The handler runs on watchdog's thread, so it only filters names and hands a small
`PathEvent` to the agent's inbox; every decision is taken on the agent's own thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from watcher.folder_lock import LOCK_NAME
from watcher.folders import Folder, in_hidden_folder
from watcher.log_fields import fields
from watcher.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX
from watcher.messages import EventKind, PathEvent

log = logging.getLogger(__name__)

POLLING_INTERVAL = 1.0
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,  # chmod +r on an unreadable file, touch: look again now, not at the rescan
    FileMovedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


class _Handler(FileSystemEventHandler):
    def __init__(self, watch: FolderWatch) -> None:
        self.folder = watch.folder
        self._watch = watch

    def _post(self, kind: EventKind, path: str) -> None:
        self._watch.post(PathEvent(kind, path, self.folder, self._watch.generation))

    def _emit(self, kind: EventKind, path: str | bytes) -> None:
        path = os.fsdecode(path)
        if not path:
            return
        name = os.path.basename(path)
        if kind is EventKind.DELETED and path == os.path.join(self.folder.path, LOCK_NAME):
            # Its lock file went (the folder is being removed, or someone deleted it): the agent looks
            # at the folder again. The open lock keeps the kernel from reporting the folder's own
            # removal, so this is how it is noticed.
            self._post(EventKind.ROOT_GONE, self.folder.path)
            return
        if in_hidden_folder(path, self.folder.path):
            return
        if self.folder.admits(path):
            self._post(kind, path)
        elif kind is EventKind.DELETED and name.endswith(SIDECAR_SUFFIX):
            suffix = ERROR_RECORD_SUFFIX if name.endswith(ERROR_RECORD_SUFFIX) else SIDECAR_SUFFIX
            image = path[: -len(suffix)]
            if self.folder.admits(image):
                self._post(EventKind.RECORD_DELETED, image)

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            self._directory_event(event)
            return
        if isinstance(event, FileMovedEvent):
            self._emit(EventKind.DELETED, event.src_path)
            self._emit(EventKind.FINISHED, event.dest_path)
        elif isinstance(event, FileClosedEvent):
            self._emit(EventKind.FINISHED, event.src_path)
        elif isinstance(event, FileDeletedEvent):
            self._emit(EventKind.DELETED, event.src_path)
        elif isinstance(event, FileAttribEvent):
            self._emit(EventKind.ATTRIB, event.src_path)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self._emit(EventKind.WRITE, event.src_path)

    def _directory_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        if isinstance(event, DirDeletedEvent) and src == self.folder.path:
            self._post(EventKind.ROOT_GONE, src)
        elif isinstance(event, DirMovedEvent):
            if src == self.folder.path:
                self._post(EventKind.ROOT_GONE, src)
            dest = os.fsdecode(event.dest_path)
            if dest and self._visible_subfolder(dest):
                self._post(EventKind.DIR_APPEARED, dest)
        elif isinstance(event, DirCreatedEvent) and self._visible_subfolder(src):
            self._post(EventKind.DIR_APPEARED, src)

    def _visible_subfolder(self, path: str) -> bool:
        """A subfolder the agent looks into: in a recursive folder, and neither it nor a parent a dot-folder."""
        return (
            self.folder.recursive
            and not os.path.basename(path).startswith(".")
            and not in_hidden_folder(path, self.folder.path)
        )


class _OverflowAlarm(logging.Handler):
    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._on_overflow()


def watch_for_overflows(on_overflow: Callable[[], None]) -> Callable[[], None]:
    """Call `on_overflow` when the kernel's inotify queue overflowed (events were lost).

    watchdog reports an overflow only as a warning in its log, so that is where we listen; should its
    wording change, the periodic rescan still finds what was missed, only later. Returns the undo.
    """
    handler = _OverflowAlarm(on_overflow)
    logger = logging.getLogger("watchdog")
    logger.addHandler(handler)
    return lambda: logger.removeHandler(handler)


class Observers:
    """One inotify observer (one inotify instance and one reader thread) and one polling observer,
    shared by every folder: 300 folders need 300 watches, not 300 of the kernel's 128 default inotify
    instances (`fs.inotify.max_user_instances`), and half as many threads as an observer each.

    Each folder still costs watchdog one emitter thread (it has one per watch).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inotify: Any = None
        self._polling: Any = None
        self._stopped: list[Any] = []

    def _observer(self, *, polling: bool) -> Any:
        with self._lock:
            if polling:
                if self._polling is None:
                    self._polling = PollingObserver(timeout=POLLING_INTERVAL)
                    self._polling.start()
                return self._polling
            if self._inotify is None:
                # Full events report a rename into the folder from outside as a move, not a creation.
                self._inotify = InotifyObserver(generate_full_events=True)
                self._inotify.start()
            return self._inotify

    def schedule(self, handler: FileSystemEventHandler, folder: Folder, *, polling: bool) -> tuple[Any, Any]:
        """Watch `folder`; (observer, watch) to unschedule it with. Raises OSError from inotify."""
        observer = self._observer(polling=polling)
        watch = observer.schedule(handler, folder.path, recursive=folder.recursive, event_filter=EVENT_FILTER)
        return observer, watch

    def stop(self, join_timeout: float | None = 2.0) -> None:
        with self._lock:
            observers = [o for o in (self._inotify, self._polling) if o is not None]
            self._inotify = self._polling = None
            self._stopped += observers
        for observer in observers:
            observer.stop()
        if join_timeout is not None:
            self.join(join_timeout)

    def join(self, timeout: float) -> None:
        for observer in self._stopped:
            observer.join(timeout)


class FolderWatch:
    """One folder's watch on the shared observers; `start` falls back to polling when inotify is out of
    watches, and says which kernel limit to raise, by how much."""

    def __init__(
        self,
        folder: Folder,
        post: Callable[[PathEvent], None],
        generation: int = 0,
        observers: Observers | None = None,
    ) -> None:
        self.folder = folder
        self.post = post
        # The config generation its events are stamped with; a reload that keeps the folder as it
        # was moves it forward, so only events made before the reload are re-resolved.
        self.generation = generation
        self._observers = observers or Observers()
        self._own_observers = observers is None
        self._scheduled: tuple[Any, Any] | None = None
        self.mode = "polling" if folder.polling else "inotify"
        self._lock = threading.Lock()
        self._inode = 0

    def start(self) -> None:
        with self._lock:
            self._inode = os.stat(self.folder.path).st_ino
            self._scheduled = self._schedule(polling=self.folder.polling)

    def _schedule(self, *, polling: bool) -> tuple[Any, Any]:
        handler = _Handler(self)
        try:
            return self._observers.schedule(handler, self.folder, polling=polling)
        except OSError as exc:
            if polling or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            log.error(
                "%s: %s; polling this folder instead (changes seen once a second). %s",
                self.folder.path,
                exc.strerror,
                raise_limit_hint(exc.errno, self.folder),
                extra=fields(folder=self.folder.path, account=self.folder.account, event="attention"),
            )
            self.mode = "polling (inotify exhausted)"
            return self._schedule(polling=True)

    def is_current(self) -> bool:
        """False when the path now names another folder than the one watched (replaced or moved)."""
        try:
            return os.stat(self.folder.path).st_ino == self._inode
        except OSError:
            return False

    def stop(self, join_timeout: float | None = 2.0) -> None:
        """Stop watching this folder (the shared observers go on for the others)."""
        with self._lock:
            scheduled, self._scheduled = self._scheduled, None
        if scheduled is not None:
            observer, watch = scheduled
            with contextlib.suppress(KeyError, RuntimeError):
                observer.unschedule(watch)
        if self._own_observers:
            self._observers.stop(join_timeout)

    def join(self, timeout: float) -> None:
        if self._own_observers:
            self._observers.join(timeout)


def raise_limit_hint(err: int | None, folder: Folder) -> str:
    """Which sysctl to raise, and to what, for an inotify limit that ran out."""
    if err == errno.EMFILE:
        current = _read_limit("max_user_instances")
        return (
            f"Raise fs.inotify.max_user_instances (now {current}) to at least {current + 8}, e.g. "
            f"sysctl -w fs.inotify.max_user_instances={max(current * 2, 256)}"
        )
    current = _read_limit("max_user_watches")
    needed = current + _count_folders(folder)
    return f"Raise fs.inotify.max_user_watches (now {current}) to at least {needed}, e.g. sysctl -w fs.inotify.max_user_watches={needed * 2}"


def _read_limit(name: str) -> int:
    try:
        return int(pathlib.Path(f"/proc/sys/fs/inotify/{name}").read_text().strip())
    except (OSError, ValueError):
        return 0


def _count_folders(folder: Folder) -> int:
    """The watches `folder` needs: itself, and every subfolder when recursive (dot-folders included:
    watchdog watches them too)."""
    if not folder.recursive:
        return 1
    return sum(1 for _ in os.walk(folder.path))
