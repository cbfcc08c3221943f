"""What the image-to-video tests share: a folder's `generate` block, the video record beside an image,
waiting for its final status, the MP4 check, and the operator's commands (`status`, `retry`, `scan`)
run as real subprocesses against an agent's config and state folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import TOKEN, read_json, status_report, wait_for
from watcher.video.mp4 import looks_like_mp4

MODEL = "I2V-2.3"
FINAL = ("done", "failed", "moderated", "unknown")


def generate(prompt: str | None = "slow dolly in", **more: Any) -> dict[str, Any]:
    """A `generate` block that polls every second (the emulator's videos take about a second)."""
    block: dict[str, Any] = {"model": MODEL, "poll_seconds": 1, **more}
    if prompt is not None:
        block["prompt"] = prompt
    return block


def video_record_of(image: Path) -> Path:
    return image.with_name(image.name + ".video.json")


def wait_video(
    image: Path, timeout: float = 60.0, *, status: str | tuple[str, ...] = FINAL
) -> dict[str, Any]:
    """The video record of `image` once its status is `status` (any final one by default)."""
    wanted = (status,) if isinstance(status, str) else status

    def ready() -> dict[str, Any] | None:
        record = read_json(video_record_of(image))
        return record if record is not None and record.get("status") in wanted else None

    return wait_for(ready, timeout, f"the video record of {image.name} with status {'/'.join(wanted)}")  # type: ignore[no-any-return]


def is_mp4(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return looks_like_mp4(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def mp4s(folder: Path) -> list[Path]:
    """Every MP4 below `folder` (none when it does not exist), sorted."""
    return sorted(folder.rglob("*.mp4")) if folder.exists() else []


def command(
    workdir: Path, *args: str, config: Path | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """`python -m watcher ARGS --config CONFIG` with the state folder an `AgentProcess(workdir, ...)`
    uses (`XDG_STATE_HOME=workdir/state`) and the test token; the token must never be printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env.update(USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(workdir / "state"), PYTHONUNBUFFERED="1")
    env.setdefault("MINIMAX_WATCHER_TIMINGS", "sidecar_retry=1,root_recheck=0.5")
    argv = [sys.executable, "-m", "watcher", *args, "--config", str(config or workdir / "config.yaml")]
    result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    assert TOKEN not in result.stdout + result.stderr, "the token leaked into the command's output"
    return result


def status_json(workdir: Path) -> dict[str, Any]:
    return status_report(command(workdir, "status", "--json"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """The metrics the agent serves on 127.0.0.1:`port`, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def read_records(folder: Path) -> dict[str, dict[str, Any]]:
    """Every `*.video.json` below `folder`, by path relative to it."""
    found = {}
    for path in sorted(folder.rglob("*.video.json")):
        data = read_json(path)
        if data is not None:
            found[str(path.relative_to(folder))] = data
    return found


__all__ = [
    "FINAL",
    "MODEL",
    "Samples",
    "command",
    "free_port",
    "generate",
    "is_mp4",
    "mp4s",
    "read_records",
    "scrape",
    "status_json",
    "video_record_of",
    "wait_video",
]
