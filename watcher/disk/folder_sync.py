"""Group commit of folder fsyncs: the names sidecars were renamed to are made durable together, by one
background thread. See docs/architecture.md, 'Recording and moving', for why and what a power cut costs.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from watcher.disk.files import fsync_folder

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.05


class FolderSyncs:
    """Folders waiting for their fsync, each once, whatever the number of names made in it."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) → a descriptor of the folder
        self._syncing = False
        self._closed = False
        self._hurry = False  # someone waits in `flush`: no gathering
        self.fsyncs = 0  # folder fsyncs done so far
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="folder-sync", daemon=True)
        self._thread.start()

    def request(self, dir_fd: int) -> None:
        """fsync this folder soon; synchronously when not started. `dir_fd` (maybe O_PATH, which
        fsync refuses) stays the caller's."""
        if self._thread is None or self._closed:
            fsync_folder(".", dir_fd)
            return
        st = os.fstat(dir_fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            if key in self._pending:
                return  # its fsync, still to come, covers this name too
            try:
                self._pending[key] = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                return  # best effort, as every folder fsync
            self._lock.notify()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every folder asked for so far is fsynced (at stop)."""
        with self._lock:
            self._hurry = True
            self._lock.notify_all()
            self._lock.wait_for(lambda: not self._pending and not self._syncing, timeout)
            self._hurry = False

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending or self._closed)
                if self._closed and not self._pending:
                    return
                gathered_at = time.monotonic() + GATHER_SECONDS
                while not (self._closed or self._hurry) and (left := gathered_at - time.monotonic()) > 0:
                    self._lock.wait(left)
                batch, self._pending = self._pending, {}
                self._syncing = True
            for fd in batch.values():
                _fsync_quietly(fd)
                os.close(fd)
            with self._lock:
                self.fsyncs += len(batch)
                self._syncing = False
                self._lock.notify_all()


def _fsync_quietly(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:  # best effort, as for every folder fsync: the rename itself succeeded
        log.debug("fsync of a folder failed: %s", exc)
