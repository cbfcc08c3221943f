"""What the change time costs: a chmod (or a link, a rename) moves it like a write does; the same bytes
are then verified by their hash and the fileID kept, never paid for twice; and sidecars written before
the change time was recorded keep counting as done (no mass re-upload after an upgrade)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ACCOUNT_A, TOKEN, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator


def scan_once(tmp_path: Path, agent: AgentProcess) -> None:
    env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(tmp_path / "state"))
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "scan", "--config", str(agent.config_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def uploaded_once(tmp_path: Path, emulator: Emulator) -> tuple[Path, AgentProcess, dict[str, object]]:
    drop = tmp_path / "drop"
    drop.mkdir()
    image = drop / "a.png"
    image.write_bytes(png_bytes(4101))
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start()
    try:
        sidecar = wait_sidecar(image, 30)
    finally:
        assert agent.stop() == 0, agent.log()
    assert sidecar["ctime_ns"] == image.stat().st_ctime_ns
    return image, agent, sidecar


def test_a_chmod_is_verified_by_hash_and_costs_no_second_upload(tmp_path: Path, emulator: Emulator) -> None:
    image, agent, before = uploaded_once(tmp_path, emulator)
    os.chmod(image, 0o600)
    assert image.stat().st_ctime_ns != before["ctime_ns"]
    scan_once(tmp_path, agent)
    after = read_json(sidecar_of(image)) or {}
    assert len(emulator.uploads) == 1
    assert after["fileID"] == before["fileID"] and after["ctime_ns"] == image.stat().st_ctime_ns
    scan_once(tmp_path, agent)  # refreshed: done again, nothing read or written
    assert read_json(sidecar_of(image)) == after and len(emulator.uploads) == 1


def test_a_sidecar_without_a_change_time_still_counts_as_done(tmp_path: Path, emulator: Emulator) -> None:
    image, agent, before = uploaded_once(tmp_path, emulator)
    legacy = {key: value for key, value in before.items() if key != "ctime_ns"}
    sidecar_of(image).write_text(json.dumps(legacy))
    os.chmod(image, 0o600)  # the change time moves; a sidecar that never recorded one is not asked
    scan_once(tmp_path, agent)
    assert len(emulator.uploads) == 1
    assert read_json(sidecar_of(image)) == legacy


def test_a_chmod_while_running_refreshes_the_sidecar_without_running_on_upload_again(
    tmp_path: Path, emulator: Emulator
) -> None:
    drop, calls = tmp_path / "drop", tmp_path / "hook-calls"
    drop.mkdir()
    hook = ["/bin/sh", "-c", f'echo "$MINIMAX_FILE" >> {calls}']
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}], hooks={"on_upload": hook}
    )
    agent.start()
    try:
        image = drop / "a.png"
        image.write_bytes(png_bytes(4201))
        before = wait_sidecar(image, 30)
        wait_for(lambda: calls.exists() and str(image) in calls.read_text(), 30, "the first on_upload")
        os.chmod(image, 0o600)
        ctime = image.stat().st_ctime_ns

        def refreshed() -> bool:
            return (read_json(sidecar_of(image)) or {}).get("ctime_ns") == ctime

        wait_for(refreshed, 30, "the sidecar refreshed with the new change time")
        (drop / "b.png").write_bytes(png_bytes(4202))  # its hook runs after any a.png would have
        wait_for(lambda: str(drop / "b.png") in calls.read_text(), 30, "on_upload of b.png")
    finally:
        assert agent.stop() == 0, agent.log()
    assert calls.read_text().splitlines().count(str(image)) == 1
    assert (read_json(sidecar_of(image)) or {})["fileID"] == before["fileID"]
    assert len(emulator.uploads) == 2  # a.png once, b.png once
