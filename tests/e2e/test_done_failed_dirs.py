"""done_dir and failed_dir: files leave the drop folder with their record, keep their sub-path, never
overwrite, and a kill -9 at any moment of a move leaves each file beside its record, finished at start."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_monitoring import free_port, scrape
from tests.helpers import ACCOUNT_A, TOKEN, error_record_of, read_json, sidecar_of, status_report, wait_for
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator


def folder_config(drop: Path) -> dict[str, object]:
    return {
        "path": str(drop),
        "account": ACCOUNT_A,
        "recursive": True,
        "done_dir": "done",
        "failed_dir": "failed",
    }


def test_uploaded_and_failed_files_move_with_their_records(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    done, failed = drop / "done", drop / "failed"
    (done / "sub").mkdir(parents=True)
    (done / "sub" / "a.png").write_bytes(b"an older a.png, kept")
    start_agent([folder_config(drop)])
    (drop / "sub").mkdir()
    (drop / "sub" / "a.png").write_bytes(png_bytes(6001))
    (drop / "top.png").write_bytes(png_bytes(6002))
    (drop / "bad.png").write_text("not an image")

    moved = wait_for(lambda: read_json(sidecar_of(done / "sub" / "a-1.png")), 20, "a.png moved as a-1.png")
    assert (
        moved["file"] == "a-1.png" and moved["sha256"] == sha256(png_bytes(6001)) and "movingTo" not in moved
    )
    assert (done / "sub" / "a.png").read_bytes() == b"an older a.png, kept"
    assert wait_for(lambda: read_json(sidecar_of(done / "top.png")), 20, "top.png moved")["file"] == "top.png"
    record = wait_for(lambda: read_json(error_record_of(failed / "bad.png")), 20, "bad.png in failed/")
    assert record["code"] == "not_an_image"

    # The record lands at its destination a moment before it leaves the drop folder: wait for that.
    def left_behind() -> list[Path]:
        left = []
        for gone in (drop / "sub" / "a.png", drop / "top.png", drop / "bad.png"):
            left += [p for p in (gone, sidecar_of(gone), error_record_of(gone)) if p.exists()]
        return left

    wait_for(lambda: not left_behind(), 10, "the drop folder to hold nothing of the moved files")
    # done/ is inside the watched tree and never uploaded from: only the two images went up.
    assert sorted(u.sha256 for u in emulator.uploads) == sorted(
        [sha256(png_bytes(6001)), sha256(png_bytes(6002))]
    )


def test_kill_9_at_any_moment_of_the_moves_leaves_every_file_beside_its_record(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent = AgentProcess(tmp_path, emulator.base_url, [folder_config(drop)], settle_seconds=0.3)
    rng = random.Random(7)
    images: list[Path] = []
    try:
        for round_ in range(4):
            batch = [drop / f"r{round_}" / f"img-{i:02}.png" for i in range(25)]
            for path in batch:
                path.parent.mkdir(exist_ok=True)
            agent.start()
            for i, path in enumerate(batch):
                path.write_bytes(png_bytes(7000 + 100 * round_ + i))
            images += batch
            time.sleep(rng.uniform(0.3, 1.5))  # a random moment of the burst: that is the experiment
            assert agent.proc is not None
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait()
            agent.proc = None
        agent.start()

        def all_placed() -> bool:
            return all(_placed(drop, image) is not None for image in images)

        wait_for(all_placed, 60, "every file moved or beside its sidecar")
        counts = collections.Counter(u.sha256 for u in emulator.uploads)
        for image in images:
            where = _placed(drop, image)
            assert where is not None
            data = where.read_bytes()
            record = json.loads(sidecar_of(where).read_text())
            assert record["sha256"] == sha256(data) and record["file"] == where.name
            assert "movingTo" not in record
        # No second upload for a file whose move a kill cut short (a kill before the sidecar was
        # written may cost one, as for any upload).
        assert sum(counts.values()) <= len(images) + 4
    finally:
        agent.stop()
    leftovers = [p for p in drop.rglob(".*") if p.name != ".minimax-watcher.lock"]
    assert leftovers == []


def _placed(drop: Path, image: Path) -> Path | None:
    """Where `image` ended: in done/ with its sidecar, or still in place beside a matching one."""
    moved = drop / "done" / image.relative_to(drop)
    if moved.exists() and sidecar_of(moved).exists() and not sidecar_of(image).exists():
        return moved
    return None


def failed_gauge(port: int, drop: Path) -> float | None:
    return scrape(port).get(("minimax_watcher_files", (("folder", str(drop)), ("state", "failed"))))


def status_json(agent: AgentProcess) -> dict[str, object]:
    env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(agent.workdir / "state"))
    argv = [sys.executable, "-m", "watcher", "status", "--json", "--config", str(agent.config_path)]
    return status_report(subprocess.run(argv, env=env, capture_output=True, timeout=60))


def test_failures_moved_to_failed_dir_still_count_as_failed_in_status_and_the_metrics(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    port = free_port()
    agent = start_agent([folder_config(drop)], metrics={"listen": f"127.0.0.1:{port}"})
    (drop / "sub").mkdir()
    (drop / "bad.png").write_text("not an image")
    (drop / "sub" / "worse.png").write_text("nor this")
    for moved in (drop / "failed" / "bad.png", drop / "failed" / "sub" / "worse.png"):
        wait_for(lambda m=moved: read_json(error_record_of(m)), 20, f"{moved.name} in failed/")
    # The shipped alert (MinimaxWatcherFailedFilesGrowing) reads this gauge: it must see them.
    wait_for(lambda: failed_gauge(port, drop) == 2, 10, "minimax_watcher_files{state=failed} at 2")
    report = status_json(agent)  # exit 1: they need attention
    [folder] = report["folders"]  # type: ignore[index]
    assert folder["failed"] == 2
    reason = "not a PNG, JPEG or WebP image"
    assert folder["failures"] == [
        {"file": "failed/bad.png", "error": reason, "moved": True},
        {"file": "failed/sub/worse.png", "error": reason, "moved": True},
    ]
    # Dealt with (removed with its record): the next full scan counts one.
    for gone in (drop / "failed" / "bad.png", error_record_of(drop / "failed" / "bad.png")):
        gone.unlink()
    agent.stop()
    agent.start()
    wait_for(lambda: failed_gauge(port, drop) == 1, 10, "the gauge at 1 after a restart")


def test_failed_dir_set_later_moves_the_old_failures_saying_so_and_counts_them(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    before = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    before.start()
    try:
        (drop / "bad.png").write_text("not an image")
        wait_for(lambda: read_json(error_record_of(drop / "bad.png")), 20, "the error record beside it")
    finally:
        assert before.stop() == 0
    port = free_port()
    folder = {"path": str(drop), "account": ACCOUNT_A, "failed_dir": "failed"}
    after = AgentProcess(tmp_path, emulator.base_url, [folder], metrics={"listen": f"127.0.0.1:{port}"})
    after.start()
    try:
        wait_for(lambda: read_json(error_record_of(drop / "failed" / "bad.png")), 20, "bad.png in failed/")
        said = f"{drop / 'bad.png'}: moved to {drop / 'failed' / 'bad.png'} with its error record"
        assert f"{said} (recorded before failed_dir was set, or before a stop)" in after.log()
        assert "a stop had come between" not in after.log()
        wait_for(lambda: failed_gauge(port, drop) == 1, 10, "the moved failure counted")
    finally:
        assert after.stop() == 0
