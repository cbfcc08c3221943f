"""What the hostile video tests share (tests/hostile/test_videos_*.py): a folder with a `generate` block,
reading video records, the CLI as the operator runs it, a hook that records its runs, the agent's RSS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import TOKEN, read_json, status_report, wait_for
from tests.helpers.agent import AgentProcess
from watcher.video.mp4 import looks_like_mp4

FINAL = frozenset({"done", "failed", "moderated", "unknown"})
# Every wait is generous: the machine is shared (2 cores, several test runs at once).
VIDEO_DEADLINE = 90.0

# Records each run (environment and stdin) as one JSON file in a folder only root can enter.
HOOK = """#!{python}
import json, os, sys, time
out = {out!r}
document = {{"env": dict(os.environ), "stdin": sys.stdin.read()}}
name = "%s-%d-%d.json" % (os.environ.get("MINIMAX_EVENT"), os.getpid(), time.monotonic_ns())
with open(os.path.join(out, "." + name), "w") as f:
    json.dump(document, f)
os.rename(os.path.join(out, "." + name), os.path.join(out, name))
"""


def generating(path: Path, account: str, **generate: Any) -> dict[str, Any]:
    """A folder config with a `generate` block (polled every second unless told otherwise)."""
    block: dict[str, Any] = {"model": "I2V-2.3", "prompt": "a slow pan", "poll_seconds": 1, **generate}
    return {"path": str(path), "account": account, "generate": block}


def video_record_of(image: Path) -> Path:
    return image.with_name(image.name + ".video.json")


def video_record(image: Path) -> dict[str, Any] | None:
    return read_json(video_record_of(image))


def wait_video(
    image: Path, statuses: frozenset[str] | set[str] = FINAL, timeout: float = VIDEO_DEADLINE
) -> dict[str, Any]:
    """The video record of `image` once its status is one of `statuses` (by default: final)."""

    def ready() -> dict[str, Any] | None:
        record = video_record(image)
        return record if record is not None and record.get("status") in statuses else None

    return wait_for(ready, timeout, f"the video record of {image.name} in {sorted(statuses)}", interval=0.1)  # type: ignore[no-any-return]


def assert_mp4(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        assert looks_like_mp4(fd, os.fstat(fd).st_size), f"{path} is not a whole MP4"
    finally:
        os.close(fd)


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`minimax-watcher ARGS` as the operator runs it beside the agent (same config, same state folder)."""
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env["XDG_STATE_HOME"] = str(cwd / "state")
    env["USEAPI_TOKEN"] = TOKEN
    result = subprocess.run(
        [sys.executable, "-m", "watcher", *args, "--config", str(cwd / "config.yaml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert TOKEN not in result.stdout + result.stderr, "the token leaked into the command's output"
    return result


def status_json(cwd: Path) -> dict[str, Any]:
    return status_report(cli("status", "--json", cwd=cwd))


def video_account(cwd: Path, account: str) -> dict[str, Any]:
    [found] = [a for a in status_json(cwd).get("video_accounts", []) if a["account"] == account]
    return found  # type: ignore[no-any-return]


def folder_videos(cwd: Path, folder: Path) -> dict[str, Any]:
    [found] = [f for f in status_json(cwd)["folders"] if f["path"] == str(folder)]
    return found["videos"]  # type: ignore[no-any-return]


def recording_hook(tmp_path: Path) -> tuple[Path, Path]:
    """A hook program and the folder it records its runs in (both in a folder only root can enter)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    out = private / "runs"
    out.mkdir()
    program = private / "hook"
    program.write_text(HOOK.format(python=sys.executable, out=str(out)))
    program.chmod(0o700)
    return program, out


def hook_runs(out: Path, event: str) -> list[dict[str, Any]]:
    runs = [read_json(path) for path in sorted(out.glob(f"{event}-*.json"))]
    return [run for run in runs if run is not None]


def killed(agent: AgentProcess) -> None:
    """kill -9, reaped: the fixture's stop then has nothing left to stop."""
    assert agent.proc is not None
    agent.proc.kill()
    agent.proc.wait()
    agent.proc = None


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def leftovers(folder: Path) -> list[str]:
    """Temporary dot-files anywhere below `folder`."""
    return sorted(
        os.path.join(root, name)
        for root, _, files in os.walk(folder)
        for name in files
        if name.startswith(".")
    )
