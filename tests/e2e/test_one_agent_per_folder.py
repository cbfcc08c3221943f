"""One folder, one agent (SPEC §6c): a second agent stands by, takes over when the first dies, and
`scan` beside a running `run` uploads nothing twice."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.e2e.test_monitoring import free_port, scrape, status_of
from tests.helpers import ACCOUNT_A, TOKEN, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator

LOCK = ".minimax-watcher.lock"


def two_agents(tmp_path: Path, drop: Path, emulator: Emulator) -> tuple[AgentProcess, AgentProcess]:
    """Two agents with their own config and state folder, both configured for `drop`."""
    agents = []
    for name in ("first", "second"):
        workdir = tmp_path / name
        workdir.mkdir()
        agents.append(AgentProcess(workdir, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}]))
    return agents[0], agents[1]


def test_two_agents_on_one_folder_upload_each_file_exactly_once(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    first, second = two_agents(tmp_path, drop, emulator)
    try:
        first.start()
        second.start()  # READY too: standing by is a normal state, not a failure
        assert "another agent holds this folder" in second.log()
        images = [drop / f"burst-{i:03}.png" for i in range(120)]
        for i, image in enumerate(images):
            image.write_bytes(png_bytes(3000 + i))
        for image in images:
            wait_sidecar(image, timeout=60)
        counts = collections.Counter(u.sha256 for u in emulator.uploads)
        assert len(counts) == len(images) and set(counts.values()) == {1}, counts.most_common(3)
        assert second.notify is not None
        assert any("standing by" in d.fields["STATUS"] for d in second.notify.with_field("STATUS"))
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_the_stand_by_shows_who_holds_the_folder_in_status_and_metrics(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    """Standing by is visible: the gauge the alert reads, and the holder's identity in `status`."""
    port = free_port()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    folders = [{"path": str(drop), "account": ACCOUNT_A}]
    first = AgentProcess(tmp_path / "first", emulator.base_url, folders)
    second = AgentProcess(
        tmp_path / "second", emulator.base_url, folders, metrics={"listen": f"127.0.0.1:{port}"}
    )
    gauge = ("minimax_watcher_folder_standing_by", (("folder", str(drop)),))
    try:
        first.start()
        second.start()
        assert first.proc is not None
        wait_for(lambda: scrape(port).get(gauge) == 1, 30, "the stand-by gauge at 1")
        [standing] = wait_for(lambda: status_of(second)["agent"]["standing_by"], 30, "standing_by in status")
        assert standing["folder"] == str(drop)
        assert f"host {socket.gethostname()}, pid {first.proc.pid}, uid {os.geteuid()}" in standing["held_by"]
        env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(second.workdir / "state"))
        text = subprocess.run([sys.executable, "-m", "watcher", "status", "--config", str(second.config_path)],
                              env=env, capture_output=True, text=True, timeout=60).stdout  # fmt: skip
        assert f"{drop}: standing by (held by host {socket.gethostname()}, pid {first.proc.pid}" in text
        assert first.stop() == 0
        wait_for(lambda: scrape(port).get(gauge) == 0, 30, "the stand-by gauge back at 0 after the takeover")
        assert status_of(second)["agent"]["standing_by"] == []
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_the_stand_by_takes_the_folder_over_when_the_holder_is_killed(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    first, second = two_agents(tmp_path, drop, emulator)
    try:
        first.start()
        second.start()
        (drop / "before.png").write_bytes(png_bytes(3200))
        wait_sidecar(drop / "before.png")
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        killed_at = time.monotonic()
        # Dropped while nobody holds the folder: found by the new holder's first scan.
        (drop / "orphan.png").write_bytes(png_bytes(3201))
        wait_for(lambda: "taking it over" in second.log(), 12, "the stand-by agent to take the folder over")
        assert time.monotonic() - killed_at < 12
        wait_sidecar(drop / "orphan.png", timeout=15)
        (drop / "after.png").write_bytes(png_bytes(3202))  # and it watches the folder from then on
        wait_sidecar(drop / "after.png", timeout=15)
        counts = collections.Counter(u.sha256 for u in emulator.uploads)
        for n in (3200, 3201, 3202):
            assert counts[sha256(png_bytes(n))] == 1
    finally:
        first.stop()  # killed: only reaped, its notify socket closed
        assert second.stop() == 0


def test_scan_next_to_a_running_agent_leaves_the_held_folder_to_it(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    images = [drop / f"present-{i:02}.png" for i in range(30)]
    for i, image in enumerate(images):
        image.write_bytes(png_bytes(3300 + i))
    (tmp_path / "run").mkdir()
    running = AgentProcess(tmp_path / "run", emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    scan_dir = tmp_path / "scan"
    scan_dir.mkdir()
    config = {"api": {"base_url": emulator.base_url}, "settle_seconds": 0.5,
              "folders": [{"path": str(drop), "account": ACCOUNT_A}]}  # fmt: skip
    (scan_dir / "config.yaml").write_text(yaml.safe_dump(config))
    try:
        running.start()
        env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(scan_dir / "state"))
        scan = subprocess.run(
            [sys.executable, "-m", "watcher", "scan", "--config", str(scan_dir / "config.yaml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert scan.returncode == 0, scan.stderr
        assert "another agent holds this folder" in scan.stderr
        for image in images:
            wait_sidecar(image, timeout=30)
        counts = collections.Counter(u.sha256 for u in emulator.uploads)
        assert len(counts) == len(images) and set(counts.values()) == {1}
        assert (drop / LOCK).exists() and not sidecar_of(drop / LOCK).exists()
    finally:
        assert running.stop() == 0


def test_a_deleted_lock_file_is_made_again_and_one_agent_still_holds_the_folder(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    first, second = two_agents(tmp_path, drop, emulator)
    try:
        first.start()
        second.start()
        (drop / LOCK).unlink()
        wait_for(lambda: (drop / LOCK).exists(), 15, "the lock file made again")
        images = [drop / f"after-{i:02}.png" for i in range(30)]
        for i, image in enumerate(images):
            image.write_bytes(png_bytes(3400 + i))
        for image in images:
            wait_sidecar(image, timeout=30)
        counts = collections.Counter(u.sha256 for u in emulator.uploads)
        assert len(counts) == len(images) and set(counts.values()) == {1}, counts.most_common(3)
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
