"""Unit tests for `watcher.upload.workers`: threads that run jobs through the pipeline and post results."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

from tests.helpers import ACCOUNT
from tests.helpers.images import png_bytes
from watcher.core.messages import JobDone, UploadJob
from watcher.core.outcome import FailureClass, UploadFailure, UploadSuccess
from watcher.core.signature import signature_of
from watcher.emulator import Emulator, Fault
from watcher.upload.client import UploadClient
from watcher.upload.pipeline import Pipeline
from watcher.upload.workers import Workers


def job_for(path: Path) -> UploadJob:
    return UploadJob(str(path), ACCOUNT, signature_of(os.stat(path)), root=str(path.parent))


def test_each_job_runs_through_the_pipeline_and_its_result_is_posted(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    posted: queue.SimpleQueue[JobDone] = queue.SimpleQueue()
    workers = Workers(Pipeline(), lambda: client, posted.put)
    workers.ensure(2)
    for n in range(3):
        (tmp_path / f"{n}.png").write_bytes(png_bytes(n))
        workers.submit(job_for(tmp_path / f"{n}.png"))

    results = sorted((posted.get(timeout=10) for _ in range(3)), key=lambda done: done.job.path)

    assert all(isinstance(done.outcome, UploadSuccess) for done in results)
    assert sorted(os.listdir(tmp_path)) == [
        "0.png",
        "0.png.json",
        "1.png",
        "1.png.json",
        "2.png",
        "2.png.json",
    ]
    assert workers.stop(time.monotonic() + 5) is False
    assert workers.busy == 0


def test_an_upload_in_flight_is_listed_with_its_size_until_it_ends(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(1))
    emu.add_fault(Fault("slow", delay=2.0))
    posted: queue.SimpleQueue[JobDone] = queue.SimpleQueue()
    workers = Workers(Pipeline(), lambda: client, posted.put)
    workers.ensure(1)
    workers.submit(job_for(path))

    emu.wait_for_held(1, 10)
    assert workers.sending() == [(str(path), path.stat().st_size, path.stat().st_size)]
    assert workers.busy == 1

    assert isinstance(posted.get(timeout=10).outcome, UploadSuccess)
    assert workers.sending() == [] and workers.busy == 0
    workers.stop(time.monotonic() + 5)


class Broken(Pipeline):
    def run(self, job: UploadJob, client: UploadClient, progress: object = None) -> JobDone:  # type: ignore[override]
        raise RuntimeError("a bug")


def test_a_bug_in_the_pipeline_is_a_temporary_failure_not_a_lost_file(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(1))
    posted: queue.SimpleQueue[JobDone] = queue.SimpleQueue()
    workers = Workers(Broken(), lambda: client, posted.put)
    workers.ensure(1)
    workers.submit(job_for(path))

    done = posted.get(timeout=10)

    assert isinstance(done.outcome, UploadFailure)
    assert done.outcome.failure_class is FailureClass.TEMPORARY
    assert (done.outcome.error, done.outcome.code) == ("internal error: a bug", "internal")
    workers.stop(time.monotonic() + 5)
