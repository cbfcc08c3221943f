"""Every inotify-watched folder on one inotify instance read by one thread, its raw events turned straight
into the facts the agent cares about.

A `TreeWatch` per folder watches each directory the agent looks into (never a dot-folder). Running out of
watches is raised by `TreeWatch.start`, or handed to `on_exhausted` (the folder moves to polling). See
docs/architecture.md, 'The threads'.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from watchdog.observers.inotify_c import (
    DEFAULT_EVENT_BUFFER_SIZE,
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
)

from watcher.core.folders import Folder
from watcher.core.media import SIDECAR_SUFFIX
from watcher.core.messages import EventKind
from watcher.watch.lock import LOCK_NAME

log = logging.getLogger(__name__)

IN = InotifyConstants
# IN_CREATE/IN_MOVED_TO also bring new subfolders to a recursive folder's attention; the *_SELF events and
# IN_UNMOUNT (always sent) on the folder itself mean it went. IN_ONLYDIR and IN_DONT_FOLLOW: a name that
# became a file or a link between the listing and the watch is not watched (nor what a link points to).
MASK = Mask(
    IN.IN_CREATE
    | IN.IN_MODIFY
    | IN.IN_ATTRIB
    | IN.IN_CLOSE_WRITE
    | IN.IN_MOVED_FROM
    | IN.IN_MOVED_TO
    | IN.IN_DELETE
    | IN.IN_DELETE_SELF
    | IN.IN_MOVE_SELF
    | IN.IN_ONLYDIR
    | IN.IN_DONT_FOLLOW
)
_ROOT_GONE = IN.IN_DELETE_SELF | IN.IN_MOVE_SELF | IN.IN_UNMOUNT
_APPEARED = IN.IN_CREATE | IN.IN_MOVED_TO
LIMIT_ERRORS = (errno.ENOSPC, errno.EMFILE)  # out of watches; out of instances
_LOCK_NAME = os.fsencode(LOCK_NAME)
_RECORD_SUFFIX = os.fsencode(SIDECAR_SUFFIX)


def file_event_kind(mask: int) -> EventKind | None:
    """What an inotify event on a file (not a directory) means to the agent; None: nothing.

    The order is watchdog's, whose events the agent took before: a rename is DELETED at its old name and
    FINISHED at its new one, as a writer's close is FINISHED; creation and each write are WRITE.
    """
    if mask & IN.IN_MOVED_TO:
        return EventKind.FINISHED
    if mask & IN.IN_ATTRIB:
        return EventKind.ATTRIB
    if mask & IN.IN_MODIFY:
        return EventKind.WRITE
    if mask & (IN.IN_DELETE | IN.IN_MOVED_FROM):
        return EventKind.DELETED
    if mask & IN.IN_CREATE:
        return EventKind.WRITE
    if mask & IN.IN_CLOSE_WRITE:
        return EventKind.FINISHED
    return None


def worth_a_look(name: bytes, mask: int = 0) -> bool:
    """Whether an event for `name` can matter.

    Dot-names never do (dot-files are never candidates, dot-folders are never looked into, and the
    agent's own sidecar temporaries are dot-files), except the folder's lock file, whose removal says
    the folder may be going. Nor does a record (`*.json`, a sidecar or an error record) being made or
    written: only its removal matters, since its image then needs a look. A directory's event always
    passes, whatever its name.
    """
    if name.startswith(b"."):
        return name == _LOCK_NAME
    if name.endswith(_RECORD_SUFFIX):
        return bool(mask & (IN.IN_DELETE | IN.IN_MOVED_FROM | IN.IN_ISDIR))
    return True


class OutOfWatches(OSError):
    """No watch could be added for `filename`: `fs.inotify.max_user_watches` is used up. `held`: how many
    watches the folder had when it ran out (let go of since)."""

    def __init__(self, filename: str, held: int) -> None:
        super().__init__(errno.ENOSPC, "inotify watch limit reached", filename)
        self.held = held


class Inotify(InotifyFD):
    """One inotify instance and its reader thread, for every folder; raises OSError(EMFILE) when
    `fs.inotify.max_user_instances` is used up.

    The thread reads the kernel's buffer and runs the callbacks itself (`run`). Events that cannot
    matter (`worth_a_look`) are dropped as the buffer is read, before an event object, a lock or a
    callback: each sidecar the agent writes makes five (its temporary created, written, renamed away;
    the sidecar renamed in and closed), against one for the image.
    """

    def run(self) -> None:
        # watchdog 7.1.1's own loop hands each buffer read to a second thread through a queue without a
        # bound, so a flood of events grows memory instead of overflowing the kernel's bounded queue
        # (fs.inotify.max_queued_events), which the agent answers with a rescan. Read and dispatch here.
        while self.should_keep_running():
            buffer = self._read_event_buffer(DEFAULT_EVENT_BUFFER_SIZE)
            if not buffer:
                return  # closed (`stop`)
            for event in self._events_in(buffer):
                self.handle_event(event)

    def _events_in(self, buffer: bytes) -> list[InotifyEvent]:
        return [
            InotifyEvent(wd, mask, cookie, name)
            for wd, mask, cookie, name in self._parse_event_buffer(buffer)
            # As watchdog's: the kernel reports IN_Q_OVERFLOW with wd=-1, and no other event without a watch.
            if (wd != -1 or mask & IN.IN_Q_OVERFLOW) and worth_a_look(name, mask)
        ]

    def handle_event(self, event: InotifyEvent) -> None:
        try:
            super().handle_event(event)
        except Exception:
            # The reader thread must live on: it reads for every folder.
            log.exception("an inotify event could not be handled (%r); the next rescan looks again", event)


class FolderEvents(Protocol):
    """Where a `TreeWatch` sends what it saw (paths as the kernel's bytes)."""

    def file(self, kind: EventKind, path: bytes) -> None: ...

    def directory_appeared(self, path: bytes) -> None: ...

    def root_gone(self) -> None: ...

    def events_lost(self) -> None: ...


class TreeWatch:
    """One folder's watches on the shared `Inotify`: the folder, and each subfolder it looks into when
    recursive. Callbacks run on the reader thread; `start` and `stop` on any."""

    def __init__(
        self,
        inotify: Inotify,
        folder: Folder,
        events: FolderEvents,
        on_exhausted: Callable[[OSError], None],
    ) -> None:
        self._inotify = inotify
        self._recursive = folder.recursive
        self._root = os.fsencode(folder.path)
        self._events = events
        self._on_exhausted = on_exhausted
        self._id = CallbackId(id(self))
        self._lock = threading.RLock()
        self._active = False
        # Each watched directory's path with a trailing "/", by watch descriptor, and back.
        self._prefix: dict[WatchDescriptor, bytes] = {}
        self._wd_of: dict[bytes, WatchDescriptor] = {}
        self._root_wd: WatchDescriptor | None = None
        # Subfolders renamed away, by cookie: the rename's other half may bring them back elsewhere.
        self._moved_from: dict[int, bytes] = {}

    def start(self, *, subfolders: bool = True) -> None:
        """Watch the folder, and its subfolders unless `subfolders` is False: then the start-up scan
        watches each one before it lists it (`watch_subfolder`), which spares a walk of the whole tree
        (a listing of two million entries at a million files) just to find the folders. Raises OSError
        (ENOSPC: out of watches) with none kept."""
        with self._lock:
            self._active = True
            try:
                self._root_wd = self._add(self._root)
                if self._recursive and subfolders:
                    self._add_below(self._root)
            except OSError:
                self.stop()
                raise

    def watch_subfolder(self, path: bytes) -> None:
        """Watch a subfolder the scan is about to list (after this, so nothing made in it meanwhile is
        missed). Out of watches: the folder falls back to polling, as when a subfolder appears."""
        if self._recursive and path != self._root:
            self._add_while_active(lambda: self._add(path))

    def watch_subfolders(self) -> None:
        """Watch every subfolder not watched yet: a start-up scan that was to watch them did not finish."""
        if self._recursive:
            self._add_while_active(lambda: self._add_below(self._root))

    def _add_while_active(self, add: Callable[[], object]) -> None:
        exhausted: OSError | None = None
        with self._lock:
            if not self._active:
                return
            try:
                add()
            except OSError as exc:
                if exc.errno in LIMIT_ERRORS:
                    exhausted = exc  # else gone or unreadable: the scan lists nothing there either
        if exhausted is not None:
            self._on_exhausted(exhausted)  # outside the lock: it stops this watch

    def stop(self) -> None:
        """Drop every watch of this folder (other folders' watches on the same directories stay)."""
        with self._lock:
            self._active = False
            wds = list(self._prefix)
            self._prefix.clear()
            self._wd_of.clear()
            self._moved_from.clear()
        self._inotify.remove_callbacks([(wd, self._id) for wd in wds])

    # ---- WatchCallback, on the reader thread ---------------------------------------------------------

    def on_event(self, event: InotifyEvent) -> None:
        exhausted: OSError | None = None
        appeared: bytes | None = None
        with self._lock:
            prefix = self._prefix.get(event.wd)
            if prefix is None or not self._active:
                return  # a watch dropped while its events were on their way
            mask = event.mask
            if not event.name:
                if mask & _ROOT_GONE and event.wd == self._root_wd:
                    self._events.root_gone()
                return
            path = prefix + event.name
            if not mask & IN.IN_ISDIR:
                kind = file_event_kind(mask)
                if kind is not None:
                    self._events.file(kind, path)
                return
            if not self._recursive:
                return  # a folder that is not recursive has no subfolders to watch or announce
            if mask & IN.IN_DELETE:
                self._forget(path)  # at once: its own last events may come late, after a new one of its name
            elif mask & IN.IN_MOVED_FROM:
                self._forget(path)
                if len(self._moved_from) > 64:
                    self._moved_from.clear()  # renamed out of the folder: their other halves never come
                self._moved_from[event.cookie] = path
            elif mask & _APPEARED:
                try:
                    self._add_tree(path)
                except OSError as exc:
                    exhausted = exc
                moved_from = self._moved_from.pop(event.cookie, None) if mask & IN.IN_MOVED_TO else None
                if moved_from is not None:
                    self._renamed(moved_from, path)
                appeared = path
        if exhausted is not None:
            self._on_exhausted(exhausted)  # first, so the folder is polled before it is walked
        if appeared is not None:
            self._events.directory_appeared(appeared)

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        with self._lock:
            prefix = self._prefix.pop(wd, None)
            if prefix is not None and self._wd_of.get(prefix) == wd:
                del self._wd_of[prefix]

    def on_queue_overflow(self) -> None:
        """Events were lost, subfolders made or removed among them: watch the tree as it is now (then
        `on_events_lost`)."""
        with self._lock:
            if not self._active:
                return
            self.stop()
            try:
                self.start()
            except OSError as exc:
                exhausted = exc
            else:
                return
        self._on_exhausted(exhausted)

    def on_events_lost(self) -> None:
        """After every folder's `on_queue_overflow`: the files of this one need a rescan. Told even when
        the overflow moved the folder to polling (its first listing comes after the lost events)."""
        self._events.events_lost()

    # ---- watches -------------------------------------------------------------------------------------

    def _add(self, path: bytes) -> WatchDescriptor:
        """Watch one directory; raises OSError, PermissionError included (watchdog lets that one pass)."""
        prefix = path if path.endswith(b"/") else path + b"/"
        known = self._wd_of.get(prefix)
        if known is not None:
            return known  # listed and then announced by the kernel too
        try:
            wd = self._inotify.add_callback(path, MASK, self, self._id)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise OutOfWatches(os.fsdecode(path), len(self._prefix)) from None
            raise
        if wd == -1:
            self._inotify.remove_callbacks([(wd, self._id)])
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        stale = self._prefix.get(wd)
        if stale is not None:
            self._wd_of.pop(stale, None)  # the same directory under its new name
        self._prefix[wd] = prefix
        self._wd_of[prefix] = wd
        return wd

    def _add_tree(self, top: bytes) -> None:
        """Watch a subfolder and the subfolders below it; raises OSError only when out of watches (a
        subfolder gone again, or unreadable, is left alone: the scan will not find anything there)."""
        try:
            self._add(top)
        except OSError as exc:
            if exc.errno in LIMIT_ERRORS:
                raise
            return
        self._add_below(top)

    def _add_below(self, top: bytes) -> None:
        for directory in subfolders(top):
            try:
                self._add(directory)
            except OSError as exc:
                if exc.errno in LIMIT_ERRORS:
                    raise

    def _forget(self, path: bytes) -> None:
        """Drop the watches on a subfolder removed or renamed away, and below it; where it lands, it is
        watched anew."""
        prefix = path + b"/"
        gone = [wd for wd, p in self._prefix.items() if p.startswith(prefix)]
        for wd in gone:
            self._wd_of.pop(self._prefix.pop(wd), None)
        self._inotify.remove_callbacks([(wd, self._id) for wd in gone])

    def _renamed(self, old: bytes, new: bytes) -> None:
        """A subfolder renamed within the folder: every file in it went from its old name to its new."""
        for directory, names in _files(new):
            old_directory = old + directory[len(new) :]
            for name in names:
                self._events.file(EventKind.DELETED, old_directory + b"/" + name)
                self._events.file(EventKind.FINISHED, directory + b"/" + name)


def subfolders(top: bytes) -> Iterator[bytes]:
    """The subfolders below `top` the agent looks into (no dot-folders, no links). Each is yielded before
    it is listed, so a watch added on it then also reports what appears in it after the listing."""
    stack = [top]
    while stack:
        directory = stack.pop()
        if directory != top:
            yield directory
        stack += _subdirectories(directory)


def _subdirectories(directory: bytes) -> list[bytes]:
    """The visible subfolders of `directory`. Leaner than `_entries`: at a start it lists every folder
    of the tree (a million files are two million entries), and keeps only the few that are folders."""
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except OSError:
        return []
    try:
        return [e.path for e in entries if not e.name.startswith(b".") and e.is_dir(follow_symlinks=False)]
    except OSError:  # a name whose type needed a stat vanished meanwhile: look at each one on its own
        return [path for path, is_dir in _entries(directory) if is_dir]


def _files(top: bytes) -> Iterator[tuple[bytes, list[bytes]]]:
    """Each folder at or below `top` (no dot-folders, no links) with the names of the files in it."""
    stack = [top]
    while stack:
        directory = stack.pop()
        entries = _entries(directory)
        stack += (path for path, is_dir in entries if is_dir)
        yield directory, [os.path.basename(path) for path, is_dir in entries if not is_dir]


def _entries(directory: bytes) -> list[tuple[bytes, bool]]:
    """The visible entries of `directory` (path, whether a directory, not following links); none when it
    is gone or unreadable: there is nothing to watch or report there then."""
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(b"."):
                    continue
                try:
                    found.append((entry.path, entry.is_dir(follow_symlinks=False)))
                except OSError:
                    continue
    except OSError:
        pass
    return found
