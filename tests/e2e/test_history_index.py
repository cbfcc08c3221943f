"""The index in the state folder is a cache of the sidecars: a restart trusts it only where the sidecars
agree, and a deleted, damaged or half-built index costs a rebuild from them, never an upload."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ACCOUNT_A, ACCOUNT_B, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.core.signature import signature_of
from watcher.disk.records import build_sidecar
from watcher.emulator import Emulator
from watcher.state.index import INDEX_NAME


def index_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "minimax-watcher" / INDEX_NAME


def done_rows(tmp_path: Path) -> int:
    db = sqlite3.connect(index_path(tmp_path))
    try:
        return int(db.execute("SELECT count(*) FROM done").fetchone()[0])
    finally:
        db.close()


def write_done_images(drop: Path, count: int, *, folders: int) -> list[Path]:
    """Tiny images spread over `folders` subfolders, each with a valid sidecar written by hand."""
    images = []
    for i in range(count):
        folder = drop / f"d{i % folders}"
        folder.mkdir(exist_ok=True)
        image = folder / f"img{i}.png"
        image.write_bytes(png_bytes(i, size=1))
        sidecar = build_sidecar(image_path=str(image), account=ACCOUNT_A,
                                file_id=f"user:4242-minimax:{ACCOUNT_A}-file:{i}", oss_path="https://oss/x",
                                signature=signature_of(image.stat()), sha256="0" * 64,
                                content_type="image/png")  # fmt: skip
        sidecar_of(image).write_text(json.dumps(sidecar))
        images.append(image)
    return images


def upload_three(start_agent, drop: Path) -> tuple[AgentProcess, list[Path]]:  # type: ignore[no-untyped-def]
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    images = []
    for i in range(3):
        image = drop / f"img{i}.png"
        image.write_bytes(png_bytes(7100 + i))
        images.append(image)
    for image in images:
        wait_sidecar(image)
    assert agent.stop() == 0
    return agent, images


def test_a_restart_keeps_what_the_index_knows_and_the_sidecars_win_where_they_disagree(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent, (deleted, foreign, kept) = upload_three(start_agent, drop)
    assert done_rows(tmp_path) == 3
    kept_record = os.stat(sidecar_of(kept))
    # While it is stopped: one sidecar is deleted, another replaced by one naming another account.
    sidecar_of(deleted).unlink()
    doctored = json.loads(sidecar_of(foreign).read_text()) | {"account": ACCOUNT_B}
    sidecar_of(foreign).write_text(json.dumps(doctored))

    agent.start()
    wait_sidecar(deleted)
    wait_for(lambda: (read_json(sidecar_of(foreign)) or {}).get("account") == ACCOUNT_A, 15,
             "the doctored sidecar to be replaced by one for the folder's account")  # fmt: skip
    # Both came back from the index's known uploads, without sending the bytes again.
    assert len(emulator.uploads) == 3
    after = os.stat(sidecar_of(kept))
    assert (after.st_ino, after.st_ctime_ns) == (kept_record.st_ino, kept_record.st_ctime_ns)


def test_the_ready_line_counts_the_configured_folders_not_the_whole_index(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    """A new empty folder beside an index of other folders: nothing of it is uploaded yet."""
    upload_three(start_agent, drop)
    assert done_rows(tmp_path) == 3
    new = tmp_path / "new"
    new.mkdir()

    def ready_line(process: AgentProcess) -> str:
        last_start = process.log().rsplit("starting with", 1)[-1]
        return next(line for line in last_start.splitlines() if " ready: " in line)

    again = start_agent([{"path": str(new), "account": ACCOUNT_A}])  # the same state folder
    assert ready_line(again).endswith("ready: 1 folder, 0 files already uploaded, 0 pending, 0 failed")
    assert again.stop() == 0
    assert done_rows(tmp_path) == 3, "the other folder's rows are still there"

    config = yaml.safe_load(again.config_path.read_text())
    config["folders"].append({"path": str(drop), "account": ACCOUNT_A})
    again.config_path.write_text(yaml.safe_dump(config))
    again.start()
    assert ready_line(again).endswith("ready: 2 folders, 3 files already uploaded, 0 pending, 0 failed")


def test_a_deleted_index_is_rebuilt_from_the_sidecars_without_an_upload(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent, _ = upload_three(start_agent, drop)
    for leftover in index_path(tmp_path).parent.glob(f"{INDEX_NAME}*"):
        leftover.unlink()

    agent.start()
    assert agent.stop() == 0
    assert len(emulator.uploads) == 3
    assert done_rows(tmp_path) == 3, "rebuilt from the sidecars the start read"


def test_a_damaged_index_is_started_afresh_and_rebuilt_without_an_upload(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent, _ = upload_three(start_agent, drop)
    index_path(tmp_path).write_bytes(b"SQLite format 3\x00" + os.urandom(8192))

    agent.start()
    assert agent.stop() == 0
    assert "starting it afresh" in agent.log()
    assert len(emulator.uploads) == 3
    assert done_rows(tmp_path) == 3


def test_kill_9_while_the_index_is_rebuilt_costs_nothing_but_time(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    count = 20_000  # several of the index's commits (one a second) while the start reads them
    write_done_images(drop, count, folders=20)
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A, "recursive": True}]
    )
    wal = Path(f"{index_path(tmp_path)}-wal")
    try:
        agent.start(wait_ready=False)
        # Killed once the rebuild has written something, and before it could have finished.
        wait_for(lambda: wal.exists() and wal.stat().st_size > 0, 30, "the rebuild to begin writing")
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        agent.proc = None
        agent.notify.close()
        agent.start(wait_ready=False)
        agent.wait_ready(timeout=120)
        assert agent.stop() == 0
    finally:
        agent.stop()
    assert emulator.uploads == []
    assert done_rows(tmp_path) == count


def test_a_big_start_shares_the_check_with_its_helper_and_still_sees_every_change_made_while_stopped(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    # Enough for the start-up helper (watcher/scan/helper.py) to be worth starting.
    images = write_done_images(drop, 2_250, folders=10)
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A, "recursive": True}]
    )
    try:
        agent.start()  # builds the index from the sidecars
        assert agent.stop() == 0
        assert done_rows(tmp_path) == len(images)
        # While it is stopped: new bytes in one image; another's sidecar emptied in place (same inode,
        # which only its ctime betrays); one image and its sidecar deleted; one image added.
        rewritten, emptied, deleted = images[7], images[1_003], images[2_001]
        rewritten.write_bytes(png_bytes(90_000, size=2))
        emptied_ino = sidecar_of(emptied).stat().st_ino
        with open(sidecar_of(emptied), "r+b") as record:
            record.truncate(0)
        assert sidecar_of(emptied).stat().st_ino == emptied_ino
        deleted.unlink()
        sidecar_of(deleted).unlink()
        added = drop / "d3" / "added.png"
        added.write_bytes(png_bytes(90_001, size=2))

        agent.start(args=("--verbose",))
        for image in (rewritten, emptied, added):
            wait_sidecar(image)
        assert agent.stop() == 0
    finally:
        agent.stop()
    helped = [line for line in agent.log().splitlines() if "the start-up helper checked" in line]
    assert helped and int(helped[-1].split("checked ")[1].split()[0]) > 0, agent.log()
    assert sorted(u.sha256 or "" for u in emulator.uploads) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (rewritten, emptied, added)
    )
    assert done_rows(tmp_path) == len(images) - 1 + 1  # the deleted one forgotten, the added one known


def status_json(agent: AgentProcess, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "USEAPI_TOKEN"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "status", "--json", "--config", str(agent.config_path)],
        env=env, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    folder: dict[str, Any] = json.loads(result.stdout)["folders"][0]
    return folder


def test_status_counts_from_the_index_beside_a_running_agent_and_creates_nothing_beside_a_stopped_one(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent, _ = upload_three(start_agent, drop)
    pending = drop / "later.png"
    pending.write_bytes(png_bytes(7200))
    state = index_path(tmp_path).parent
    before = sorted(os.listdir(state))
    assert f"{INDEX_NAME}-wal" not in before  # closed cleanly: read as immutable, nothing created
    counts = status_json(agent, tmp_path)
    assert (counts["uploaded"], counts["pending"], counts["failed"]) == (3, 1, 0)
    assert sorted(os.listdir(state)) == before

    agent.start()  # now -wal and -shm exist, and status reads beside the writer
    wait_sidecar(pending)
    assert f"{INDEX_NAME}-wal" in os.listdir(state)
    counts = status_json(agent, tmp_path)
    assert (counts["uploaded"], counts["pending"], counts["failed"]) == (4, 0, 0)
