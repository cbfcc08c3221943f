"""Fair shares between folders for the scheduler: its timers and its upload queue, one queue per folder,
served in turn.

A folder with 100,000 files due at once (a first start over an archive, a dropper's flood of files that
are not images) must not push another folder's new image behind all of them: a loop turn's looks and
the free upload slots go to the folders with work, one each in turn, so a file in a quiet folder waits
for at most a turn's share, whatever the others hold.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator


class FairTimers:
    """Timers (when, path) kept per folder; `due` yields those due, one folder at a time in turn."""

    def __init__(self) -> None:
        # By folder path; a folder served is moved to the end, so the order is "least recently served first".
        self._heaps: dict[str, list[tuple[float, int, str]]] = {}
        self._seq = 0
        self._size = 0

    def __len__(self) -> int:
        """Timers held, superseded ones included (they go when due, or at `compact`)."""
        return self._size

    def push(self, folder: str, at: float, path: str) -> None:
        self._seq += 1
        heap = self._heaps.get(folder)
        if heap is None:
            heap = self._heaps[folder] = []
        heapq.heappush(heap, (at, self._seq, path))
        self._size += 1

    def next_deadline(self) -> float:
        return min((heap[0][0] for heap in self._heaps.values()), default=float("inf"))

    def due(self, now: float) -> Iterator[tuple[float, str]]:
        """(when, path) of the timers due at `now`: one of each folder with any due, then again, until
        none is due or the caller stops taking."""
        turn = [folder for folder, heap in self._heaps.items() if heap[0][0] <= now]
        while turn:
            again = []
            for folder in turn:
                heap = self._heaps.get(folder)  # a `compact` between two yields may have changed it
                if not heap or heap[0][0] > now:
                    continue
                del self._heaps[folder]
                at, _, path = heapq.heappop(heap)
                self._size -= 1
                if heap:
                    self._heaps[folder] = heap  # to the end: served
                    if heap[0][0] <= now:
                        again.append(folder)
                yield at, path
            turn = again

    def compact(self, live: Callable[[float, str], bool]) -> None:
        """Drop the timers `live` says nothing waits for (superseded, or their file untracked)."""
        for folder, heap in list(self._heaps.items()):
            kept = [timer for timer in heap if live(timer[0], timer[2])]
            self._size -= len(heap) - len(kept)
            if kept:
                heapq.heapify(kept)
                self._heaps[folder] = kept
            else:
                del self._heaps[folder]


class FairQueue:
    """Paths waiting for an upload slot, per folder; `popleft` takes from each folder in turn."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[str]] = {}  # folders with paths waiting, in the order they are served

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def append(self, folder: str, path: str) -> None:
        queue = self._queues.get(folder)
        if queue is None:
            queue = self._queues[folder] = deque()
        queue.append(path)

    def appendleft(self, folder: str, path: str) -> None:
        """First in its folder's queue, and its folder first to be served."""
        queue = self._queues.pop(folder, None) or deque()
        queue.appendleft(path)
        self._queues = {folder: queue, **self._queues}

    def popleft(self) -> str:
        folder = next(iter(self._queues))
        queue = self._queues.pop(folder)
        path = queue.popleft()
        if queue:
            self._queues[folder] = queue  # to the end: served
        return path
