"""Many folders share one inotify instance: more folders than the kernel's default 128 instances per
user, and none falls back to polling."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import ACCOUNT_A, wait_sidecar
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator


def test_two_hundred_folders_are_all_watched_by_inotify(
    start_agent, tmp_path: Path, emulator: Emulator
) -> None:
    folders = []
    for i in range(200):
        folder = tmp_path / f"folder-{i:03}"
        folder.mkdir()
        folders.append({"path": str(folder), "account": ACCOUNT_A})
    agent = start_agent(folders)
    assert agent.proc is not None
    assert inotify_instances(agent.proc.pid) == 1
    assert "polling" not in agent.log()
    last = tmp_path / "folder-199" / "late.png"
    last.write_bytes(png_bytes(9501))
    wait_sidecar(last, timeout=15)


def inotify_instances(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += "inotify" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
    return count
