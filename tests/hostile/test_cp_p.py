"""`cp -p` onto a done file: new bytes in the same inode, with the size and mtime put back. Only the
change time tells (it moves on every write and cannot be set back): the file must be uploaded again,
whether the agent was stopped or running (issue 21 item 9, N6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, TOKEN, read_json, sidecar_of, status_report, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile

OLD, NEW = png_bytes(3101), png_bytes(3102)


def cp_p_over(image: Path, new_bytes: bytes, elsewhere: Path) -> None:
    """What a user's `cp -p other.png image.png` does when other.png has the same size and mtime."""
    assert len(new_bytes) == image.stat().st_size
    before = image.stat()
    source = elsewhere / "other.png"
    source.write_bytes(new_bytes)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    subprocess.run(["cp", "-p", str(source), str(image)], check=True)
    after = image.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert image.read_bytes() == new_bytes


def status_counts(tmp_path: Path, agent: AgentProcess) -> dict[str, int]:
    env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(tmp_path / "state"))
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "status", "--json", "--config", str(agent.config_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    [folder] = status_report(result)["folders"]
    return {key: folder[key] for key in ("uploaded", "pending", "failed")}


@pytest.fixture
def uploaded(tmp_path: Path, emulator: Emulator) -> tuple[Path, AgentProcess]:
    drop, elsewhere = tmp_path / "drop", tmp_path / "elsewhere"
    drop.mkdir()
    elsewhere.mkdir()
    (drop / "a.png").write_bytes(OLD)
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start()
    try:
        assert wait_sidecar(drop / "a.png", 30)["sha256"] == sha256(OLD)
    except BaseException:
        agent.stop()
        raise
    return drop / "a.png", agent


def test_cp_p_while_the_agent_is_stopped_uploads_the_new_bytes(
    tmp_path: Path, emulator: Emulator, uploaded: tuple[Path, AgentProcess]
) -> None:
    image, agent = uploaded
    assert agent.stop() == 0, agent.log()
    cp_p_over(image, NEW, tmp_path / "elsewhere")
    agent.start()
    try:
        sidecar = wait_sidecar(image, 30, differs_from=sha256(OLD))
    finally:
        assert agent.stop() == 0, agent.log()
    assert sidecar["sha256"] == sha256(NEW) and sidecar["ctime_ns"] == image.stat().st_ctime_ns
    assert len(emulator.uploads) == 2
    assert status_counts(tmp_path, agent) == {"uploaded": 1, "pending": 0, "failed": 0}


def test_cp_p_while_the_agent_runs_uploads_the_new_bytes(
    tmp_path: Path, emulator: Emulator, uploaded: tuple[Path, AgentProcess]
) -> None:
    image, agent = uploaded
    try:
        cp_p_over(image, NEW, tmp_path / "elsewhere")
        sidecar = wait_sidecar(image, 30, differs_from=sha256(OLD))
    finally:
        assert agent.stop() == 0, agent.log()
    assert sidecar["sha256"] == sha256(NEW)
    assert len(emulator.uploads) == 2
    assert read_json(sidecar_of(image)) == sidecar
    assert status_counts(tmp_path, agent) == {"uploaded": 1, "pending": 0, "failed": 0}
