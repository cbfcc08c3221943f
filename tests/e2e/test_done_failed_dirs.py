"""done_dir and failed_dir: files leave the drop folder with their record, keep their sub-path, never
overwrite, and a kill -9 at any moment of a move leaves each file beside its record, finished at start."""

from __future__ import annotations

import collections
import json
import random
import signal
import time
from pathlib import Path

from tests.helpers import ACCOUNT_A, error_record_of, read_json, sidecar_of, wait_for
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
