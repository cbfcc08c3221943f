"""Polling, for folders inotify cannot watch: one thread for every polled folder, each poll costing what
changed (a stat per directory, a listing only where its stamp moved), not what the tree holds.

See docs/architecture.md, 'The threads'.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from watcher.core.folders import Folder
from watcher.core.messages import EventKind
from watcher.core.signature import RACY_NS
from watcher.disk.files import open_directory

log = logging.getLogger(__name__)

POLLING_INTERVAL = 1.0

Stamp = tuple[int, int, int]  # (inode, mtime_ns, ctime_ns)
FileStamp = tuple[int, int, int, int]  # (inode, size, mtime_ns, ctime_ns)


class PolledEvents(Protocol):
    """Where a poll sends what changed (`watcher.watch.observers._FolderEvents`)."""

    def file(self, kind: EventKind, path: str) -> None: ...

    def directory_appeared(self, path: str) -> None: ...

    def root_gone(self) -> None: ...


@dataclass
class _Directory:
    stamp: Stamp | None = None  # None: to be listed at the next poll
    files: dict[str, FileStamp] = field(default_factory=dict)
    subfolders: set[str] = field(default_factory=set)


class PolledTree:
    """One folder's directories as last listed; `poll` reports what changed since."""

    def __init__(
        self, folder: Folder, events: PolledEvents, full_every: Callable[[], float], racy_ns: int = RACY_NS
    ) -> None:
        self.folder = folder
        self._racy_ns = racy_ns
        self._events = events
        self._full_every = full_every
        self._root = folder.path
        self._dirs: dict[str, _Directory] = {}
        self._lock = threading.Lock()
        self._gone = False
        self._root_inode = 0
        self._next_full = 0.0
        self.listed = 0  # directories listed by polls so far (the first listing not counted)

    def first_listing(self) -> None:
        """List the tree without reporting anything: changes from now on are reported."""
        with self._lock:
            self._dirs[self._root] = _Directory()
            self._root_inode = os.lstat(self._root).st_ino
            self._relist(self._root, quiet=True)
            self._next_full = time.monotonic() + self._full_every()

    def poll(self) -> None:
        with self._lock:
            if self._gone:
                return
            now = time.monotonic()
            full = now >= self._next_full
            if full:
                self._next_full = now + self._full_every()
            for path in list(self._dirs):
                if path in self._dirs:  # not dropped with a parent meanwhile
                    self._poll_directory(path, full)

    def _poll_directory(self, path: str, full: bool) -> None:
        directory = self._dirs[path]
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        replaced = path == self._root and st is not None and st.st_ino != self._root_inode
        if st is None or not stat.S_ISDIR(st.st_mode) or replaced:
            if path == self._root:
                self._gone = True
                self._events.root_gone()
            else:
                self._drop(path)
            return
        if full or directory.stamp != (st.st_ino, st.st_mtime_ns, st.st_ctime_ns):
            self.listed += 1
            self._relist(path)

    def _relist(self, path: str, *, quiet: bool = False) -> None:
        """List `path` again and report its changes; new subfolders are listed (and reported) in turn."""
        stack = [path]
        while stack:
            current = stack.pop()
            directory = self._dirs[current]
            listed = self._list(current)
            if listed is None:
                if current != self._root:
                    self._drop(current)
                continue
            stamp, files, subfolders = listed
            prefix = current.rstrip("/") + "/"
            if not quiet:
                self._report(prefix, directory.files, files)
            for name in directory.subfolders - subfolders:
                self._drop(prefix + name)
            for name in subfolders - directory.subfolders:
                child = prefix + name
                self._dirs[child] = _Directory()
                stack.append(child)
                if not quiet:
                    self._events.directory_appeared(child)
            directory.files, directory.subfolders = files, subfolders
            # A listing taken within the timestamp tick of a change may have missed it: list it again.
            racy = time.time_ns() - max(stamp[1], stamp[2]) < self._racy_ns
            directory.stamp = None if racy else stamp

    def _report(self, prefix: str, before: dict[str, FileStamp], now: dict[str, FileStamp]) -> None:
        for name, seen in now.items():
            old = before.get(name)
            if old is None or old[:3] != seen[:3]:
                self._events.file(EventKind.WRITE, prefix + name)
            elif old != seen:
                self._events.file(EventKind.ATTRIB, prefix + name)  # mode or owner: look again now
        for name in before.keys() - now.keys():
            self._events.file(EventKind.DELETED, prefix + name)

    def _list(self, path: str) -> tuple[Stamp, dict[str, FileStamp], set[str]] | None:
        """The directory's stamp, files and subfolders to descend into; None when it cannot be listed."""
        try:
            fd = open_directory(self._root, path)
        except OSError:
            return None
        files: dict[str, FileStamp] = {}
        subfolders: set[str] = set()
        try:
            st = os.fstat(fd)
            for name in os.listdir(fd):
                try:
                    entry = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                if stat.S_ISDIR(entry.st_mode):
                    if self.folder.recursive and not name.startswith("."):
                        subfolders.add(name)
                else:
                    files[name] = (entry.st_ino, entry.st_size, entry.st_mtime_ns, entry.st_ctime_ns)
        except OSError:
            return None
        finally:
            os.close(fd)
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns), files, subfolders

    def _drop(self, path: str) -> None:
        """A subfolder went (or cannot be listed): its files and those below it are gone."""
        stack = [path]
        while stack:
            gone = stack.pop()
            directory = self._dirs.pop(gone, None)
            if directory is None:
                continue
            for name in directory.files:
                self._events.file(EventKind.DELETED, gone + "/" + name)
            stack += (gone + "/" + name for name in directory.subfolders)


class Poller:
    """The one polling thread: every `interval` seconds, each scheduled tree's `poll`."""

    def __init__(self, interval: float = POLLING_INTERVAL) -> None:
        self._interval = interval
        self._trees: list[PolledTree] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self._started = False

    def schedule(self, tree: PolledTree) -> None:
        """Poll `tree` from now on; its first listing is taken before this returns (raises OSError when
        the folder cannot be listed at all)."""
        os.lstat(tree.folder.path)
        tree.first_listing()
        with self._lock:
            self._trees.append(tree)
            if not self._started:
                self._started = True
                self._thread.start()

    def unschedule(self, tree: PolledTree) -> None:
        with self._lock:
            if tree in self._trees:
                self._trees.remove(tree)

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        if self._started:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            with self._lock:
                trees = list(self._trees)
            for tree in trees:
                try:
                    tree.poll()
                except Exception:  # the thread polls every folder: it must live on
                    log.exception("%s: a poll failed; the next one tries again", tree.folder.path)
