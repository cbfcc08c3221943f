"""An operator tries the agent with `run --emulate`, then points the same config at the real API (here
a second emulator with the token of user 4242): the emulator's fileIDs (user 1, an ossPath on
loopback) must not count as done, nor lend themselves to identical bytes, in `run`, `scan`,
`scan --dry-run` and `status` (issue 21 item 2). Never reuse across users; the old sidecar is replaced
by the new upload's, never lost before it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, TOKEN, read_json, sidecar_of, status_report, wait_for
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile


def cli(tmp_path: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "USEAPI_TOKEN"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")  # the state folder the agent used
    if token is not None:
        env["USEAPI_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args, "--config", str(tmp_path / "config.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tried_with_the_emulator(tmp_path: Path, real: Emulator) -> tuple[Path, dict[str, object]]:
    """`run --emulate` (no token: the built-in emulator's user 1) uploads a.png; then b.png, the same
    bytes, and c.png arrive while the agent is stopped. The config names the real API all along."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(png_bytes(2101))
    agent = AgentProcess(tmp_path, real.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start(args=("--emulate",), token=None)
    try:
        emulated = wait_for(lambda: read_json(sidecar_of(drop / "a.png")), 30, "the emulated upload")
    finally:
        assert agent.stop() == 0, agent.log()
    assert str(emulated["fileID"]).startswith("user:1-"), emulated
    shutil.copyfile(drop / "a.png", drop / "b.png")
    (drop / "c.png").write_bytes(png_bytes(2102))
    assert real.uploads == []
    return drop, emulated


def counts(tmp_path: Path) -> dict[str, int]:
    [folder] = status_report(cli(tmp_path, "status", "--json"))["folders"]
    return {key: folder[key] for key in ("uploaded", "pending", "failed")}


def would_upload(tmp_path: Path, token: str | None) -> list[str]:
    result = cli(tmp_path, "scan", "--dry-run", token=token)
    assert result.returncode == 0, result.stderr
    return [line.split("\t")[0] for line in result.stdout.splitlines() if "\timage/png\t" in line]


def assert_all_uploaded_for_the_real_user(drop: Path, real: Emulator, emulated: dict[str, object]) -> None:
    sidecars = {name: read_json(sidecar_of(drop / name)) or {} for name in ("a.png", "b.png", "c.png")}
    for name, sidecar in sidecars.items():
        assert str(sidecar.get("fileID", "")).startswith(f"user:{real.uid}-"), (name, sidecar)
        assert str(sidecar.get("ossPath", "")).startswith(real.origin), (name, sidecar)
        assert sidecar.get("fileID") != emulated["fileID"], name
    # a.png was uploaded again for this user (b.png may reuse that new upload: same user, same bytes).
    assert len(real.uploads) >= 2


def test_an_emulated_sidecar_is_pending_for_the_real_api_in_dry_run_and_status(
    tmp_path: Path, emulator: Emulator
) -> None:
    drop, _ = tried_with_the_emulator(tmp_path, emulator)
    everything = sorted(str(drop / n) for n in ("a.png", "b.png", "c.png"))
    assert sorted(would_upload(tmp_path, TOKEN)) == everything
    # Without a token only the base URL can be compared: enough here, and it says what it assumed.
    assert sorted(would_upload(tmp_path, None)) == everything
    assert "no API token found" in cli(tmp_path, "scan", "--dry-run", token=None).stderr
    assert counts(tmp_path) == {"uploaded": 0, "pending": 3, "failed": 0}
    assert emulator.requests == []


def test_run_uploads_again_for_the_real_user_and_replaces_the_emulated_sidecar(
    tmp_path: Path, emulator: Emulator
) -> None:
    drop, emulated = tried_with_the_emulator(tmp_path, emulator)
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}])
    agent.start()
    try:

        def replaced() -> bool:
            return all(
                str((read_json(sidecar_of(drop / n)) or {}).get("fileID", "")).startswith("user:4242-")
                for n in ("a.png", "b.png", "c.png")
            )

        wait_for(replaced, 30, "sidecars of user 4242")
    finally:
        assert agent.stop() == 0, agent.log()
    assert_all_uploaded_for_the_real_user(drop, emulator, emulated)
    assert counts(tmp_path) == {"uploaded": 3, "pending": 0, "failed": 0}
    assert would_upload(tmp_path, TOKEN) == []
    # And back: for the emulator's user, these are not done either (nothing is ever reused across users).
    assert len(would_upload(tmp_path, "user:1-emulator")) == 3


def test_scan_uploads_again_for_the_real_user(tmp_path: Path, emulator: Emulator) -> None:
    drop, emulated = tried_with_the_emulator(tmp_path, emulator)
    result = cli(tmp_path, "scan")
    assert result.returncode == 0, result.stderr
    assert_all_uploaded_for_the_real_user(drop, emulator, emulated)
    assert counts(tmp_path) == {"uploaded": 3, "pending": 0, "failed": 0}


def test_a_reload_to_another_api_user_is_refused_and_the_agent_keeps_its_own(
    tmp_path: Path, emulator: Emulator
) -> None:
    drop, token_file = tmp_path / "drop", tmp_path / "token"
    drop.mkdir()
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    api = {"base_url": emulator.base_url, "token_file": str(token_file)}
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}], api=api)
    agent.start(token=None)
    try:
        token_file.write_text("user:7-someone-else\n")
        agent.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in agent.log(), 30, "the refused reload")
        (drop / "after.png").write_bytes(png_bytes(2103))
        sidecar = wait_for(lambda: read_json(sidecar_of(drop / "after.png")), 30, "an upload after it")
    finally:
        assert agent.stop() == 0, agent.log()
    assert "user or the base URL changed" in agent.log()
    assert str(sidecar["fileID"]).startswith("user:4242-")
