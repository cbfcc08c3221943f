"""Unit tests for `watcher.upload.pipeline`: the one per-file path (send, record, move, tell hooks) that
the workers and `minimax-watcher upload` share, against the real emulator, with real files."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT
from tests.helpers.images import png_bytes
from tests.unit.upload.files import current_signature, watched_tree
from watcher.config.schema import HooksSettings
from watcher.core.folders import Folder
from watcher.core.messages import JobDone, UploadJob
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadSuccess
from watcher.core.retry import RetryPolicy
from watcher.core.signature import NO_RECORD_ID
from watcher.disk.mover import Mover
from watcher.disk.records import read_record, write_error_record, write_sidecar_atomically
from watcher.emulator import Emulator, Fault
from watcher.hooks.runner import HookRunner
from watcher.state.seal import SidecarSeal
from watcher.upload.client import UploadClient
from watcher.upload.pipeline import Pipeline, error_record_for, sidecar_for

NO_WAIT = RetryPolicy(base=0.0, cap=0.0, floor=0.0, jitter=False, give_up_after=3)

NOT_AN_IMAGE = "not a PNG, JPEG or WebP image"  # what the agent says of a file that is not one


def job_in(drop: Path, name: str, folder: Folder, **fields: object) -> UploadJob:
    path = drop / name
    return UploadJob(
        str(path),
        folder.account,
        current_signature(path),
        root=folder.path,
        done_dir=folder.done_dir,
        failed_dir=folder.failed_dir,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


# ---- recording ---------------------------------------------------------------------------------------


def test_a_success_writes_its_sealed_sidecar_and_drops_a_stale_error_record(
    emu: Emulator, client: UploadClient, drop: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    (drop / "a.png.error.json").write_text('{"error": "old"}')
    seal = SidecarSeal(b"k" * 32)
    folder = Folder(str(drop), ACCOUNT, False, False)

    done = Pipeline(seal=seal).run(job_in(drop, "a.png", folder), client)

    assert isinstance(done.outcome, UploadSuccess)
    written = json.loads((drop / "a.png.json").read_text())
    assert written == done.sidecar
    assert seal.verifies(written)
    assert written["account"] == ACCOUNT and written["fileID"] == done.outcome.file_id
    assert done.record_id != NO_RECORD_ID and done.moved_to is None and done.record_error is None
    assert not (drop / "a.png.error.json").exists()


def test_a_permanent_failure_writes_its_error_record(emu: Emulator, client: UploadClient, drop: Path) -> None:
    (drop / "a.png").write_text("not an image at all")
    folder = Folder(str(drop), ACCOUNT, False, False)

    done = Pipeline().run(job_in(drop, "a.png", folder, attempt=3), client)

    assert isinstance(done.outcome, UploadFailure) and done.outcome.error == NOT_AN_IMAGE
    record = read_record(str(drop / "a.png.error.json"))
    assert record is not None
    assert (record["code"], record["attempts"]) == ("not_an_image", 3)
    assert not (drop / "a.png.json").exists()
    assert emu.requests == []


def test_a_write_event_during_the_upload_makes_the_result_stale(
    emu: Emulator, client: UploadClient, drop: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    folder = Folder(str(drop), ACCOUNT, False, False)
    job = job_in(drop, "a.png", folder)
    pipeline = Pipeline()
    pipeline.expect(job)
    pipeline.changes.bump(job.path)  # an observer's write event, while the job waits or runs

    done = pipeline.run(job, client)

    assert isinstance(done.outcome, FileChanged)
    assert done.outcome.reason == "the file was written to while it was uploaded"
    assert not (drop / "a.png.json").exists()
    assert pipeline.changes.end(job.path) is False, "the job's entry is gone with it"


# ---- moving ------------------------------------------------------------------------------------------


def test_a_success_moves_the_file_with_its_sidecar_to_done_dir(
    emu: Emulator, client: UploadClient, drop: Path, tmp_path: Path
) -> None:
    (drop / "sub").mkdir()
    (drop / "sub" / "a.png").write_bytes(png_bytes(1))
    done_dir = tmp_path / "done"
    folder = Folder(str(drop), ACCOUNT, True, False, done_dir=str(done_dir))
    pipeline = Pipeline(mover=Mover(None))
    pipeline.follow([folder])

    done = pipeline.run(job_in(drop, "sub/a.png", folder), client)

    assert done.moved_to == str(done_dir / "sub" / "a.png")
    assert sorted(os.listdir(done_dir / "sub")) == ["a.png", "a.png.json"]
    assert os.listdir(drop / "sub") == []
    assert json.loads((done_dir / "sub" / "a.png.json").read_text())["fileID"] == done.outcome.file_id  # type: ignore[union-attr]


def test_a_result_made_under_settings_a_reload_replaced_is_recorded_but_not_moved(
    emu: Emulator, client: UploadClient, drop: Path, tmp_path: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    done_dir = tmp_path / "done"
    before = Folder(str(drop), ACCOUNT, False, False, done_dir=str(done_dir))
    pipeline = Pipeline(mover=Mover(None))
    pipeline.follow([Folder(str(drop), ACCOUNT, False, False)])  # the reload dropped done_dir

    done = pipeline.run(job_in(drop, "a.png", before), client)

    assert isinstance(done.outcome, UploadSuccess)
    assert (done.moved_to, done.record_id) == (None, NO_RECORD_ID)
    assert sorted(os.listdir(drop)) == ["a.png", "a.png.json"]
    assert not done_dir.exists()


# ---- telling the hooks -------------------------------------------------------------------------------


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[HookRunner]:
    out = tmp_path / "told"
    script = f'printf "%s %s\\n" "$MINIMAX_EVENT" "$MINIMAX_FILE" >> {out}'
    settings = HooksSettings(on_upload=["/bin/sh", "-c", script], on_failure=["/bin/sh", "-c", script])
    runner = HookRunner(settings, tmp_path / "state", 1)
    runner.start()
    yield runner
    runner.stop(timeout=5)


def told(tmp_path: Path, hooks: HookRunner) -> list[str]:
    assert hooks.wait_until_idle(10)
    deadline = time.monotonic() + 5
    while not (tmp_path / "told").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return (tmp_path / "told").read_text().splitlines()


def test_the_hook_is_told_where_the_file_is_once_moved(
    emu: Emulator, client: UploadClient, drop: Path, tmp_path: Path, hooks: HookRunner
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    (drop / "b.png").write_text("not an image")
    folder = Folder(str(drop), ACCOUNT, False, False, failed_dir=str(tmp_path / "failed"))
    pipeline = Pipeline(hooks=hooks, mover=Mover(None))
    pipeline.follow([folder])

    pipeline.run(job_in(drop, "a.png", folder), client)
    pipeline.run(job_in(drop, "b.png", folder), client)

    assert told(tmp_path, hooks) == [f"upload {drop}/a.png", f"failure {tmp_path}/failed/b.png"]


def test_no_hook_runs_for_a_result_a_reload_made_stale(
    emu: Emulator, client: UploadClient, drop: Path, tmp_path: Path, hooks: HookRunner
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    (drop / "b.png").write_bytes(png_bytes(2))
    pipeline = Pipeline(hooks=hooks)
    pipeline.follow([Folder(str(drop), "999999", False, False)])  # the folder's account changed

    pipeline.run(job_in(drop, "a.png", Folder(str(drop), ACCOUNT, False, False)), client)
    pipeline.follow([Folder(str(drop), ACCOUNT, False, False)])
    pipeline.run(job_in(drop, "b.png", Folder(str(drop), ACCOUNT, False, False)), client)

    assert told(tmp_path, hooks) == [f"upload {drop}/b.png"]


# ---- sidecars stored earlier ---------------------------------------------------------------------------


def stored_job(drop: Path, folder: Folder, sidecar: dict[str, object]) -> UploadJob:
    path = drop / "a.png"
    return UploadJob(
        str(path),
        folder.account,
        current_signature(path),
        stored_sidecar=sidecar,
        root=folder.path,
        done_dir=folder.done_dir,
    )


def test_a_stored_sidecar_is_written_with_no_upload_by_the_same_writer(
    emu: Emulator, client: UploadClient, drop: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    (drop / "a.png.error.json").write_text('{"error": "old"}')
    stored = {"fileID": "user:1-minimax:1-file:5", "sha256": "s", "size": 1, "contentType": "image/png"}

    done = Pipeline().run(stored_job(drop, Folder(str(drop), ACCOUNT, False, False), stored), client)

    assert isinstance(done.outcome, UploadSuccess) and done.reused
    assert done.outcome.file_id == "user:1-minimax:1-file:5"
    assert json.loads((drop / "a.png.json").read_text()) == stored
    assert not (drop / "a.png.error.json").exists()
    assert done.record_id != NO_RECORD_ID
    assert emu.requests == []


def test_a_stored_sidecar_of_a_file_that_changed_is_not_written(
    emu: Emulator, client: UploadClient, drop: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    job = stored_job(drop, Folder(str(drop), ACCOUNT, False, False), {"fileID": "f"})
    (drop / "a.png").write_bytes(png_bytes(2) * 2)

    done = Pipeline().run(job, client)

    assert isinstance(done.outcome, FileChanged)
    assert not (drop / "a.png.json").exists()


def test_a_stored_sidecar_is_never_written_through_a_symlinked_folder(
    emu: Emulator, client: UploadClient, tmp_path: Path
) -> None:
    drop, _ = watched_tree(tmp_path)
    path = str(drop / "sub" / "a.png")
    signature = current_signature(Path(path))
    away = tmp_path / "away"
    (drop / "sub").rename(away)
    (drop / "sub").symlink_to(away, target_is_directory=True)  # the very same file, through a symlink
    stored = {"fileID": "f", "sha256": "s", "size": signature.size, "mtime_ns": signature.mtime_ns}

    done = Pipeline().run(UploadJob(path, ACCOUNT, signature, stored_sidecar=stored, root=str(drop)), client)

    assert isinstance(done.outcome, FileChanged)
    assert sorted(p.name for p in away.iterdir()) == ["a.png"]


def test_records_are_written_below_the_root_and_never_through_a_symlinked_folder(tmp_path: Path) -> None:
    drop, outside = watched_tree(tmp_path)
    path = str(drop / "sub" / "a.png")
    job = UploadJob(path, ACCOUNT, None, root=str(drop))
    signature = current_signature(Path(path))
    failure = UploadFailure(FailureClass.PERMANENT, NOT_AN_IMAGE, "not_an_image", local=True)
    sidecar = sidecar_for(job, UploadSuccess("f", "o", "s", 1, "image/png"), signature)
    write_error_record(path, error_record_for(job, failure, signature), job.root)
    write_sidecar_atomically(path, sidecar, job.root)
    assert sorted(os.listdir(drop / "sub")) == ["a.png", "a.png.json"]

    (drop / "sub").rename(tmp_path / "away")
    (drop / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError):
        write_error_record(path, error_record_for(job, failure, signature), job.root)
    with pytest.raises(OSError):
        write_sidecar_atomically(path, sidecar, job.root)
    assert list(outside.iterdir()) == []


# ---- `minimax-watcher upload`: the same path, retried by a policy ---------------------------------------


def test_run_until_final_retries_temporary_failures_and_then_records(
    emu: Emulator, client: UploadClient, drop: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    emu.add_fault(Fault("status", status=503, times=2))

    done = Pipeline().run_until_final(UploadJob(str(drop / "a.png"), ACCOUNT, None), client, NO_WAIT)

    assert isinstance(done.outcome, UploadSuccess)
    assert done.job.attempt == 3
    assert len(emu.requests) == 3
    assert (drop / "a.png.json").exists()


def test_run_until_final_gives_up_as_its_policy_says(emu: Emulator, client: UploadClient, drop: Path) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    emu.add_fault(Fault("status", status=503, times=-1))

    done: JobDone = Pipeline().run_until_final(UploadJob(str(drop / "a.png"), ACCOUNT, None), client, NO_WAIT)

    assert isinstance(done.outcome, UploadFailure)
    assert done.outcome.failure_class is FailureClass.TEMPORARY
    assert done.job.attempt == 3 and len(emu.requests) == 3
    assert sorted(os.listdir(drop)) == ["a.png"], "a temporary failure leaves no record"


def test_run_until_final_stops_at_a_permanent_failure_with_its_attempts_recorded(
    emu: Emulator, client: UploadClient, drop: Path
) -> None:
    (drop / "a.png").write_bytes(png_bytes(1))
    emu.add_fault(Fault("status", status=503))
    emu.add_fault(Fault("status", status=400))

    done = Pipeline().run_until_final(UploadJob(str(drop / "a.png"), ACCOUNT, None), client, NO_WAIT)

    assert isinstance(done.outcome, UploadFailure)
    assert done.outcome.failure_class is FailureClass.PERMANENT
    record = read_record(str(drop / "a.png.error.json"))
    assert record is not None and record["attempts"] == 2
