"""Filesystem observers for all folders (`Observers`): inotify where the kernel delivers events, polling where
asked or where inotify ran out; each folder is a `FolderWatch` on one of them.

They run on their own threads, so they only filter names and post a small `PathEvent`; every decision is
taken on the loop's thread.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable

from watcher.core.folders import Folder, in_hidden_folder
from watcher.core.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX
from watcher.core.messages import EventKind, PathEvent
from watcher.log_fields import say
from watcher.watch.inotify import LIMIT_ERRORS, Inotify, TreeWatch
from watcher.watch.limits import raise_limit_hint
from watcher.watch.lock import LOCK_NAME
from watcher.watch.polling import PolledTree, Poller

log = logging.getLogger(__name__)


class _FolderEvents:
    """What happened in one folder, as the agent's `PathEvent`s: the one translation behind both the
    inotify watches (`watcher.watch.inotify.TreeWatch`) and the polls (`watcher.watch.polling.PolledTree`)."""

    def __init__(self, watch: FolderWatch) -> None:
        self.folder = watch.folder
        self._watch = watch
        self._lock_file = os.path.join(self.folder.path, LOCK_NAME)

    def _post(self, kind: EventKind, path: str) -> None:
        log.debug("%s: %s (event)", path, kind.value)
        self._watch.post(PathEvent(kind, path, self.folder, self._watch.generation))

    def file(self, kind: EventKind, path: str | bytes) -> None:
        path = os.fsdecode(path)
        if not path:
            return
        name = os.path.basename(path)
        if path == self._lock_file:
            # Its lock file went or was replaced (the folder is being removed, or someone deleted or
            # renamed over it): the agent looks at the folder again. The open lock keeps the kernel
            # from reporting the folder's own removal, so this is how it is noticed.
            self.root_gone()
            return
        if in_hidden_folder(path, self.folder.path):
            return
        if self.folder.admits(path):
            self._post(kind, path)
        elif kind is not EventKind.DELETED and not name.endswith(SIDECAR_SUFFIX):
            log.debug(
                "%s: %s (event), not a candidate of %s (media, include, exclude)",
                path,
                kind.value,
                self.folder.path,
            )
        elif kind is EventKind.DELETED and name.endswith(SIDECAR_SUFFIX):
            suffix = ERROR_RECORD_SUFFIX if name.endswith(ERROR_RECORD_SUFFIX) else SIDECAR_SUFFIX
            image = path[: -len(suffix)]
            if self.folder.admits(image):
                self._post(EventKind.RECORD_DELETED, image)

    def directory_appeared(self, path: str | bytes) -> None:
        """A subfolder was made or moved in: the agent walks it, if it looks into it at all (in a recursive
        folder, and neither it nor a parent a dot-folder)."""
        path = os.fsdecode(path)
        if (
            self.folder.recursive
            and not os.path.basename(path).startswith(".")
            and not in_hidden_folder(path, self.folder.path)
        ):
            self._post(EventKind.DIR_APPEARED, path)

    def root_gone(self) -> None:
        self._post(EventKind.ROOT_GONE, self.folder.path)

    def events_lost(self) -> None:
        self._post(EventKind.EVENTS_LOST, self.folder.path)


class Observers:
    """One inotify instance (`Inotify`: one reader thread) and one polling thread, shared by every folder:
    300 folders need 300 watches or more, not 300 of the kernel's 128 default inotify instances
    (`fs.inotify.max_user_instances`), and two threads, not a thread per folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inotify: Inotify | None = None
        self._poller: Poller | None = None
        # A poll lists every directory again this often (the folders' `rescan_seconds`): a file rewritten
        # in place does not move its directory's stamp.
        self.full_poll_every = 300.0
        self._stopped: list[Inotify | Poller] = []
        self._out_of_instances_told = False

    def inotify(self) -> Inotify:
        """The shared instance, made (and its reader started) at first use; OSError(EMFILE) when the
        kernel makes none (tried again at the next folder)."""
        with self._lock:
            if self._inotify is None:
                self._inotify = Inotify()
                self._inotify.start()
            return self._inotify

    def first_told_out_of_instances(self) -> bool:
        """True once: every folder falls back to polling for the same reason, which is said once."""
        with self._lock:
            told, self._out_of_instances_told = self._out_of_instances_told, True
            return not told

    def schedule_polling(self, events: _FolderEvents, folder: Folder) -> PolledTree:
        """Poll `folder`; its first listing is taken before this returns, so changes from now on are seen."""
        with self._lock:
            if self._poller is None:
                self._poller = Poller()
            poller = self._poller
        tree = PolledTree(folder, events, lambda: self.full_poll_every)
        poller.schedule(tree)
        return tree

    def unschedule_polling(self, tree: PolledTree) -> None:
        with self._lock:
            poller = self._poller
        if poller is not None:
            poller.unschedule(tree)

    def stop(self, join_timeout: float | None = 2.0) -> None:
        with self._lock:
            inotify, poller = self._inotify, self._poller
            self._inotify = self._poller = None
            running: list[Inotify | Poller] = [t for t in (inotify, poller) if t is not None]
            self._stopped += running
        for thread in running:
            thread.stop()
        if join_timeout is not None:
            self.join(join_timeout)

    def join(self, timeout: float) -> None:
        for thread in self._stopped:
            thread.join(timeout)


class FolderWatch:
    """One folder's watch on the shared observers: inotify (a `TreeWatch`), or polling where the folder
    says so or inotify is out of watches or instances; then one error line says which kernel limit to
    raise, by how much."""

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
        self._events = _FolderEvents(self)
        self._tree: TreeWatch | None = None
        self._polled: PolledTree | None = None
        self.mode = "polling" if folder.polling else "inotify"
        self._lock = threading.Lock()
        self._stopped = False
        self._inode = 0

    def start(self, *, subfolders: bool = True) -> None:
        """Watch the folder; raises OSError when it cannot be watched at all. Without `subfolders`, the
        start-up scan watches each subfolder before listing it (`watch_subfolder`; `TreeWatch.start`)."""
        with self._lock:
            self._inode = os.stat(self.folder.path).st_ino
            if self.folder.polling:
                self._poll()
                return
            try:
                tree = TreeWatch(self._observers.inotify(), self.folder, self._events, self._out_of_watches)
                tree.start(subfolders=subfolders)
            except OSError as exc:
                if exc.errno not in LIMIT_ERRORS:
                    raise
                self._fall_back(exc)
                return
            self._tree = tree

    def watch_subfolder(self, path: str) -> None:
        """The start-up scan is about to list `path`: watch it first (polling needs nothing)."""
        tree = self._tree
        if tree is not None:
            tree.watch_subfolder(os.fsencode(path))

    def watch_subfolders(self) -> None:
        """The start-up scan stopped short: watch the subfolders it did not reach."""
        tree = self._tree
        if tree is not None:
            tree.watch_subfolders()

    def _poll(self) -> None:
        self._polled = self._observers.schedule_polling(self._events, self.folder)

    def _fall_back(self, exc: OSError) -> None:
        """inotify ran out: poll the folder instead, and say so (once for all folders when out of instances)."""
        self.mode = "polling (inotify exhausted)"
        self._poll()
        if exc.errno == errno.EMFILE and not self._observers.first_told_out_of_instances():
            return
        below = f" (at {exc.filename})" if exc.filename and exc.filename != self.folder.path else ""
        say(
            log.error,
            "%s: %s%s; polling %s instead (changes seen once a second). %s",
            self.folder.path,
            exc.strerror,
            below,
            "the folders" if exc.errno == errno.EMFILE else "this folder",
            raise_limit_hint(exc, self.folder),
            folder=self.folder.path,
            account=self.folder.account,
            event="attention",
        )

    def _out_of_watches(self, exc: OSError) -> None:
        """A subfolder that appeared could not be watched (on the inotify reader thread): the folder is
        polled from now on; its inotify watches go once polling has taken its first listing."""
        with self._lock:
            tree, self._tree = self._tree, None
            if tree is None or self._stopped:
                return
            try:
                self._fall_back(exc)
            except OSError as poll_exc:
                say(
                    log.error,
                    "%s: cannot poll this folder either: %s; only rescans find its files now",
                    self.folder.path,
                    poll_exc.strerror or poll_exc,
                    folder=self.folder.path,
                    account=self.folder.account,
                    event="attention",
                )
        tree.stop()

    def is_current(self) -> bool:
        """False when the path now names another folder than the one watched (replaced or moved)."""
        try:
            return os.stat(self.folder.path).st_ino == self._inode
        except OSError:
            return False

    def stop(self, join_timeout: float | None = 2.0) -> None:
        """Stop watching this folder (the shared observers go on for the others)."""
        with self._lock:
            self._stopped = True
            tree, self._tree = self._tree, None
            polled, self._polled = self._polled, None
        if tree is not None:
            tree.stop()
        if polled is not None:
            self._observers.unschedule_polling(polled)
        if self._own_observers:
            self._observers.stop(join_timeout)

    def join(self, timeout: float) -> None:
        if self._own_observers:
            self._observers.join(timeout)
