"""Hooks run by the real agent: what each gets (environment, stdin), what it never gets (the token),
that a slow hook does not slow uploads, and that a run pending at kill -9 happens after the restart."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from tests.helpers import ACCOUNT_A, ACCOUNT_B, TOKEN, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator, Fault

RECORDER = """#!{python}
import json, os, sys, time
out = {out!r}
if os.path.exists(out + ".fail") and not os.path.exists(out + ".go"):
    sys.exit(3)
time.sleep({sleep})
event = {{"env": dict(os.environ), "stdin": sys.stdin.read(), "argv": sys.argv}}
name = "%s-%d-%d.json" % (os.environ.get("MINIMAX_EVENT"), os.getpid(), time.monotonic_ns())
with open(os.path.join(out, name), "w") as f:
    json.dump(event, f)
print("hook saw", os.environ.get("MINIMAX_FILE"))
"""


def recorder(tmp_path: Path, sleep: float = 0.0) -> tuple[Path, Path]:
    """A hook program that writes what it got into a folder; (program, folder)."""
    out = tmp_path / "hook-out"
    out.mkdir(exist_ok=True)
    program = tmp_path / f"record-hook-{sleep}"
    program.write_text(RECORDER.format(python=sys.executable, out=str(out), sleep=sleep))
    program.chmod(0o755)
    return program, out


def runs(out: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(out.glob(f"{event}-*.json")):
        data = read_json(path)
        if data is not None:
            found.append(data)
    return found


def test_each_hook_gets_its_event_and_never_the_token(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    program, out = recorder(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    emulator.add_fault(Fault("status", status=402, times=-1, account=ACCOUNT_B))
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "done_dir": "done"}, {"path": str(other), "account": ACCOUNT_B}],
        hooks={"on_upload": [str(program), "--uploaded"], "on_failure": [str(program)],
               "on_attention": [str(program)], "timeout_seconds": 20},
    )  # fmt: skip
    (drop / "cat.png").write_bytes(png_bytes(9001))
    (drop / "bad.png").write_text("not an image")
    (other / "refused.png").write_bytes(png_bytes(9002))

    [upload] = wait_for(lambda: runs(out, "upload"), 20, "the on_upload hook")
    moved = drop / "done" / "cat.png"
    sidecar = json.loads(sidecar_of(moved).read_text())
    env = upload["env"]
    assert env["MINIMAX_FILE"] == str(moved) and env["MINIMAX_SIDECAR"] == str(sidecar_of(moved))
    assert env["MINIMAX_FILE_ID"] == sidecar["fileID"] and env["MINIMAX_ACCOUNT"] == ACCOUNT_A
    assert env["MINIMAX_SHA256"] == sidecar["sha256"] and env["MINIMAX_CONTENT_TYPE"] == "image/png"
    assert env["MINIMAX_FOLDER"] == str(drop) and upload["argv"][1:] == ["--uploaded"]
    assert json.loads(upload["stdin"]) == sidecar

    [failure] = wait_for(lambda: runs(out, "failure"), 20, "the on_failure hook")
    assert failure["env"]["MINIMAX_CODE"] == "not_an_image"
    assert failure["env"]["MINIMAX_ERROR_RECORD"] == str(drop / "bad.png.error.json")
    assert json.loads(failure["stdin"])["code"] == "not_an_image"

    attention = wait_for(lambda: runs(out, "attention"), 20, "the on_attention hook")
    assert any(a["env"].get("MINIMAX_ACCOUNT") == ACCOUNT_B and "paused" in a["env"]["MINIMAX_MESSAGE"]
               for a in attention)  # fmt: skip

    for run in runs(out, "upload") + runs(out, "failure") + attention:
        assert "USEAPI_TOKEN" not in run["env"] and "CREDENTIALS_DIRECTORY" not in run["env"]
        assert "NOTIFY_SOCKET" not in run["env"]
        assert all(TOKEN not in value for value in run["env"].values())
    assert "hook saw" in agent.log()  # the hook's output reaches the log


def test_on_failure_gets_the_folders_account_and_none_for_a_folder_without_one(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    """As the README's table says: MINIMAX_ACCOUNT for on_failure, whether the agent or the API refused
    the file, and after the move to failed_dir; empty only when the folder names no account."""
    program, out = recorder(tmp_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    emulator.add_fault(Fault("status", status=400, times=1, account=ACCOUNT_A))  # the API refuses one
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "failed_dir": "failed"}, {"path": str(bare)}],
        hooks={"on_failure": [str(program)], "timeout_seconds": 20},
    )
    (drop / "refused.png").write_bytes(png_bytes(9011))
    wait_for(lambda: len(runs(out, "failure")) == 1, 20, "the API's refusal's on_failure")
    (drop / "broken.png").write_text("not an image")
    (bare / "broken.png").write_text("not an image either")

    wait_for(lambda: len(runs(out, "failure")) == 3, 20, "three on_failure runs")
    by_file = {f["env"]["MINIMAX_FILE"]: f["env"] for f in runs(out, "failure")}
    assert set(by_file) == {
        str(drop / "failed" / "refused.png"),
        str(drop / "failed" / "broken.png"),
        str(bare / "broken.png"),
    }
    assert by_file[str(drop / "failed" / "refused.png")]["MINIMAX_ACCOUNT"] == ACCOUNT_A
    assert by_file[str(drop / "failed" / "broken.png")]["MINIMAX_ACCOUNT"] == ACCOUNT_A
    assert "MINIMAX_ACCOUNT" not in by_file[str(bare / "broken.png")]


def test_a_slow_hook_never_slows_the_uploads(start_agent, tmp_path: Path, drop: Path) -> None:
    program, _ = recorder(tmp_path, sleep=30)
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A}],
        concurrency=2,
        hooks={"on_upload": [str(program)], "timeout_seconds": 60},
    )
    images = [drop / f"quick-{i}.png" for i in range(8)]
    for i, image in enumerate(images):
        image.write_bytes(png_bytes(9100 + i))
    for image in images:
        wait_sidecar(image, timeout=15)  # with every hook slot asleep for 30 s


def test_a_hook_run_pending_at_kill_9_runs_after_the_restart(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    program, out = recorder(tmp_path)
    (Path(str(out) + ".fail")).write_text("until .go exists")
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}],
        hooks={"on_upload": [str(program)], "timeout_seconds": 20},
    )  # fmt: skip
    agent.start()
    try:
        (drop / "pending.png").write_bytes(png_bytes(9201))
        wait_sidecar(drop / "pending.png")
        wait_for(lambda: "trying again in" in agent.log(), 20, "a failed hook run")
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait()
        agent.proc = None
        assert runs(out, "upload") == []
        (Path(str(out) + ".go")).write_text("now")
        agent.start()
        [done] = wait_for(lambda: runs(out, "upload"), 30, "the pending hook run after the restart")
        assert done["env"]["MINIMAX_FILE"] == str(drop / "pending.png")
        assert len(emulator.uploads) == 1  # the file was not uploaded again, only its hook run
    finally:
        agent.stop()


def test_scan_exits_once_its_hooks_have_run(tmp_path: Path, drop: Path, emulator: Emulator) -> None:
    import os
    import subprocess

    import yaml

    program, out = recorder(tmp_path, sleep=1.0)
    (drop / "scanned.png").write_bytes(png_bytes(9301))
    config = {
        "api": {"base_url": emulator.base_url},
        "folders": [{"path": str(drop), "account": ACCOUNT_A}],
        "hooks": {"on_upload": [str(program)]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(tmp_path / "state"))
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "scan", "--config", str(tmp_path / "config.yaml")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [run] = runs(out, "upload")  # already there when scan returned: no waiting here
    assert run["env"]["MINIMAX_FILE"] == str(drop / "scanned.png")
