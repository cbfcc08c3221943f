"""The baselines a user would otherwise run, each in a process of its own so its figures are its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .constants import ACCOUNT, HARNESS, TOKEN
from .context import Context
from .procfs import proc_cpu_seconds, proc_status_kb, session_pids, wait_or_kill


class ShellHotFolder:
    """Baseline (1): shell_hotfolder.sh, inotifywait piped into a curl-per-file bash loop."""

    def __init__(self, ctx: Context, name: str, folders: list[Path]) -> None:
        self.log_path = ctx.fresh_dir(f"shell-{name}") / "shell.log"
        env = dict(os.environ, USEAPI_TOKEN=TOKEN)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", str(HARNESS / "shell_hotfolder.sh"), ctx.emulator.base_url, *map(str, folders)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while "Watches established." not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"inotifywait did not start: {self.log_path.read_text()}")
            time.sleep(0.01)

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in session_pids(self.proc.pid))

    def failures(self) -> int:
        return self.log_path.read_text(errors="replace").count("upload failed")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        wait_or_kill(self.proc, 10, lambda: os.killpg(self.proc.pid, signal.SIGKILL))

    def __enter__(self) -> ShellHotFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_client(ctx: Context, command: str, args: list[str]) -> dict[str, Any]:
    """clients.py in a process of its own; returns its JSON line."""
    env = dict(os.environ, USEAPI_TOKEN=TOKEN)
    done = subprocess.run(
        [sys.executable, str(HARNESS / "clients.py"), command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clients.py {command} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("failed") and command != "done-walk":
        raise RuntimeError(f"clients.py {command}: {result['failed']} uploads failed")
    return result


def run_curl_upload(ctx: Context, path: Path) -> dict[str, float]:
    """Baseline (3): `curl -X POST -T FILE`; wall time, and peak RSS sampled while it runs."""
    url = f"{ctx.emulator.base_url}/files/?account={ACCOUNT}"
    split = urlsplit(url)
    command = [
        *("curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}"),
        *("-X", "POST", "-T", str(path)),
        # -T appends the file's name to a URL ending in "/"; keep the documented path as it is.
        *("--request-target", f"{split.path}?{split.query}"),
        *("-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: image/png"),
        url,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, proc_status_kb(proc.pid, "VmHWM"))
        time.sleep(0.05)
    seconds = time.monotonic() - started
    out, err = proc.communicate()
    code, sent = ([*out.split(), "", ""])[:2]
    if proc.returncode != 0 or code != "200" or int(float(sent or 0)) != path.stat().st_size:
        raise RuntimeError(f"curl -T failed: rc={proc.returncode} {out!r} {err!r}")
    return {"seconds": seconds, "vmhwm_kb": peak}
