"""Upload workers: threads that each run one `UploadJob` at a time through the pipeline and post back
its `JobDone`, so that the loop never waits on a disk or a socket. Threads and their accounting only:
what happens to a file is `watcher.upload.pipeline`'s.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from watcher.core.messages import JobDone, UploadJob
from watcher.core.outcome import FailureClass, UploadFailure
from watcher.log_fields import say
from watcher.upload.client import UploadClient
from watcher.upload.pipeline import Pipeline

log = logging.getLogger("watcher")


class Workers:
    """`count` threads (grown on reload, never shrunk) sharing one job queue."""

    def __init__(
        self, pipeline: Pipeline, client: Callable[[], UploadClient], post: Callable[[JobDone], None]
    ) -> None:
        self._pipeline = pipeline
        self._client = client  # called per job: a reload swaps the client, jobs in flight keep theirs
        self._post = post
        self._jobs: queue.SimpleQueue[UploadJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        # Uploads in flight, for the live status.
        self._sending: dict[str, _Sending] = {}
        # When a job last started, ended or sent bytes: the systemd watchdog is pinged only while
        # this moves or nothing is in flight, so a worker stuck for good stops the pings.
        self.last_progress = time.monotonic()

    def ensure(self, count: int) -> None:
        if not self._threads:
            self._pipeline.start()
        while len(self._threads) < count:
            thread = threading.Thread(target=self._loop, name=f"upload-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: UploadJob) -> None:
        self._pipeline.expect(job)
        self._jobs.put(job)

    @property
    def busy(self) -> int:
        return self._busy

    def sending(self) -> list[tuple[str, int, int]]:
        """(path, bytes sent, size) of each upload in flight."""
        with self._busy_lock:
            return [(path, s.sent, s.size) for path, s in self._sending.items()]

    def stop(self, deadline: float) -> bool:
        """Ask every thread to end; wait until `deadline`. True when uploads were still in flight."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._pipeline.stop(max(1.0, deadline - time.monotonic()))
        return self._busy > 0 and any(t.is_alive() for t in self._threads)

    def _sending_begins(self, sending: _Sending) -> None:
        with self._busy_lock:
            self._sending[sending.path] = sending

    def _sending_ends(self, path: str) -> None:
        with self._busy_lock:
            self._sending.pop(path, None)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._busy_lock:
                self._busy += 1
            self.last_progress = time.monotonic()
            started = time.monotonic()
            try:
                done = self._pipeline.run(job, self._client(), _Sending(self, job.path))
            except Exception as exc:  # a bug must not lose the file: report it as temporary
                say(
                    log.exception,
                    "unexpected error while uploading %s",
                    job.path,
                    file=job.path,
                    folder=job.root,
                    account=job.account,
                    event="retry",
                )
                failure = UploadFailure(FailureClass.TEMPORARY, f"internal error: {exc}", "internal")
                done = JobDone(job, failure, None, False, time.monotonic() - started)
            with self._busy_lock:
                self._busy -= 1
            self.last_progress = time.monotonic()
            self._post(done)


class _Sending:
    """One upload's line in `Workers.sending`, from the moment its file is open until its send ends."""

    __slots__ = ("_workers", "path", "sent", "size")

    def __init__(self, workers: Workers, path: str) -> None:
        self._workers = workers
        self.path = path
        self.sent = 0
        self.size = 0

    def start(self, size: int) -> None:
        self.size = size
        self._workers._sending_begins(self)

    def __call__(self, sent: int) -> None:
        self._workers.last_progress = time.monotonic()
        self.sent = sent  # one worker per path: no other writer

    def finish(self) -> None:
        self._workers._sending_ends(self.path)
