"""Reloads while files are in flight: the running agent ends with sidecars for the config in force."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ACCOUNT_A, ACCOUNT_B, read_json, sidecar_of, wait_for
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator, Fault


def reload_with(agent: AgentProcess, change: Any) -> None:
    """Edit the agent's config with `change(config)` and send SIGHUP; wait until it took the new one."""
    config = yaml.safe_load(agent.config_path.read_text())
    change(config)
    agent.config_path.write_text(yaml.safe_dump(config))
    reloads = agent.log().count("config reloaded")
    agent.signal(signal.SIGHUP)
    wait_for(lambda: agent.log().count("config reloaded") > reloads, 15, "the reload")


def test_an_account_changed_by_reload_during_an_upload_ends_with_the_new_accounts_sidecar(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=2.0))  # holds the first upload while the config changes
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    image = drop / "moved-account.png"
    image.write_bytes(png_bytes(901))
    emulator.wait_for_held(1, timeout=20)

    def to_b(config: dict[str, Any]) -> None:
        config["folders"][0]["account"] = ACCOUNT_B

    reload_with(agent, to_b)

    def sidecar_for_b() -> dict[str, Any] | None:
        data = read_json(sidecar_of(image))
        return data if data is not None and data.get("account") == ACCOUNT_B else None

    sidecar = wait_for(sidecar_for_b, 30, "a sidecar for the new account")
    uploads = {u.file_id: u for u in emulator.uploads}
    assert uploads[sidecar["fileID"]].account == ACCOUNT_B
    assert sidecar["sha256"] == sha256(image.read_bytes())
    # It stays that way: the old upload's result never overwrites the new one.
    agent.stop()
    final = read_json(sidecar_of(image))
    assert final is not None and final["account"] == ACCOUNT_B and final["fileID"] == sidecar["fileID"]


def test_a_folder_removed_by_reload_stops_retrying_its_files_during_an_outage(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    # An outage for account A whose answers come late, so the reload lands while an upload is in flight.
    emulator.add_fault(Fault("status", status=503, delay=2.0, times=-1, account=ACCOUNT_A))
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}, {"path": str(kept), "account": ACCOUNT_B}]
    )
    doomed = drop / "doomed.png"
    doomed.write_bytes(png_bytes(902))
    emulator.wait_for_held(1, timeout=20)

    def drop_first_folder(config: dict[str, Any]) -> None:
        config["folders"] = [f for f in config["folders"] if f["path"] != str(drop)]

    reload_with(agent, drop_first_folder)
    requests_at_reload = sum(1 for r in emulator.requests if r.account == ACCOUNT_A)
    log_at_reload = len(agent.log())

    # The other folder still works...
    other = kept / "fine.png"
    other.write_bytes(png_bytes(903))
    wait_for(lambda: read_json(sidecar_of(other)), 20, "the kept folder's sidecar")
    # ...and for longer than several retries of the removed folder's file would take (1, 2, 4 s
    # backoff), nothing more is tried for it. A bounded observation window: what must not happen.
    time.sleep(8)
    assert sum(1 for r in emulator.requests if r.account == ACCOUNT_A) <= requests_at_reload + 1
    assert "doomed.png" not in agent.log()[log_at_reload:].replace("doomed.png: its folder", "")
    assert not sidecar_of(doomed).exists()


def test_with_a_done_dir_the_file_moved_is_the_one_uploaded_for_the_new_account(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    emulator.add_fault(Fault("slow", delay=2.0))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "done_dir": "done"}])
    image = drop / "moving.png"
    image.write_bytes(png_bytes(904))
    emulator.wait_for_held(1, timeout=20)

    def to_b(config: dict[str, Any]) -> None:
        config["folders"][0]["account"] = ACCOUNT_B

    reload_with(agent, to_b)
    moved = drop / "done" / "moving.png"

    def moved_for_b() -> dict[str, Any] | None:
        data = read_json(sidecar_of(moved))
        return data if data is not None and data.get("account") == ACCOUNT_B else None

    sidecar = wait_for(moved_for_b, 30, "the file in done/ with the new account's sidecar")
    assert {u.file_id: u for u in emulator.uploads}[sidecar["fileID"]].account == ACCOUNT_B
    assert not image.exists() and not (drop / "done" / "moving-1.png").exists()
