"""The loop's inbox: bounded, coalescing per path, and fair between folders; a folder whose events
overflow it is told once (`EventsLost`) and rescanned instead. A folder's removal and the kernel's own
overflow are never dropped: only they say that a rescan must come after them."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from watcher.core.messages import EventKind, EventsLost, Message, PathEvent

# As the kernel's own default queue (fs.inotify.max_queued_events): a burst of this many files in one
# folder coalesces; beyond it, a rescan finds them.
PER_FOLDER = 16384
TOTAL = 65536


class _Waiting:
    __slots__ = ("events", "gone", "kernel_lost", "lost")

    def __init__(self) -> None:
        self.events: dict[tuple[EventKind, str], PathEvent] = {}
        self.lost: EventsLost | None = None
        self.gone: PathEvent | None = None
        self.kernel_lost: PathEvent | None = None


class _Wake:
    """Put in the plain queue when events wait, so that a loop blocked on it wakes up."""


_WAKE = _Wake()


class Inbox:
    def __init__(self, per_folder: int = PER_FOLDER, total: int = TOTAL) -> None:
        self._per_folder = per_folder
        self._total = total
        self._messages: queue.SimpleQueue[Message | _Wake] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting] = {}  # by folder path, in the order the folders take turns
        self._count = 0
        self._woken = False  # a _WAKE is in the plain queue, or the loop has not yet found it empty
        self._taking: Iterator[Message] = iter(())  # the folder being handled (loop thread only)

    def __len__(self) -> int:
        """Events waiting (not messages): bounded by `total`."""
        return self._count

    def put(self, message: Message) -> None:
        """Thread-safe; signal-handler-safe for every message but a `PathEvent`."""
        if not isinstance(message, PathEvent):
            self._messages.put(message)
            return
        key = message.folder.path
        with self._lock:
            waiting = self._waiting.get(key)
            if waiting is None:
                waiting = self._waiting[key] = _Waiting()
            wake = not self._woken
            self._woken = True
            if message.kind is EventKind.ROOT_GONE:
                waiting.gone = message
            elif message.kind is EventKind.EVENTS_LOST:
                # Not folded into `lost`: that rescan may already be under way, while the kernel's
                # overflow needs a listing that starts after its watches were set up again.
                waiting.kernel_lost = message
            elif waiting.lost is None:
                events = waiting.events
                at = (message.kind, message.path)
                if events.pop(at, None) is None:
                    self._count += 1
                events[at] = message
                if len(events) > self._per_folder or self._count > self._total:
                    self._count -= len(events)
                    waiting.events = {}
                    waiting.lost = EventsLost(message.folder, message.generation)
        if wake:
            self._messages.put(_WAKE)

    def get(self, timeout: float) -> Message | None:
        """The next message, waiting up to `timeout` seconds for one; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.get_nowait()
            if message is not None:
                return message
            try:
                got = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if not isinstance(got, _Wake):
                return got

    def get_nowait(self) -> Message | None:
        """The next message if one is waiting: other messages first (few, and they free resources:
        upload slots, scan batches), then the current folder's events, then the next folder's."""
        while not self._messages.empty():  # one reader: not empty means get_nowait has one
            got = self._messages.get_nowait()
            if not isinstance(got, _Wake):
                return got
        for message in self._taking:
            return message
        self._taking = self._next_folder()
        for message in self._taking:
            return message
        return None

    def _next_folder(self) -> Iterator[Message]:
        with self._lock:
            if not self._waiting:
                self._woken = False  # the next event posts a wake-up again
                return iter(())
            key = next(iter(self._waiting))
            waiting = self._waiting.pop(key)
            self._count -= len(waiting.events)
        return _in_order(waiting)


def _in_order(waiting: _Waiting) -> Iterator[Message]:
    if waiting.gone is not None:
        yield waiting.gone
    if waiting.lost is not None:
        yield waiting.lost
    if waiting.kernel_lost is not None:
        yield waiting.kernel_lost
    yield from waiting.events.values()
