"""folders: hundreds of watched folders receiving images at once: the agent's threads, and no polling.

300 folders, 100 images each. The agent starts on the 300 empty folders (default settings, the
machine's kernel limits); once READY=1, every image is renamed in from a staging folder, and the suite
waits for all 30,000 sidecars. The agent's thread count (/proc/PID/task) is sampled every 50 ms from
READY to the last sidecar, and read again once the agent is idle; its log must never mention polling
(the fallback when inotify runs out of instances or watches). Baseline: the agent on one folder.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

from agent_process import AgentProcess
from context import Context
from history import wait_quiet
from images import move_all, stage_files
from results import Outcome, Row, verdict
from sidecar_watch import SidecarWatch

MAX_THREADS = 20


class ThreadSampler:
    """The peak of a process's thread count, sampled every 50 ms on a thread of the suite."""

    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent
        self.peak = agent.threads()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.agent.threads())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(1)
        return self.peak


def _inotify_instances(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


def _limit(name: str) -> str:
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as f:
            return f.read().strip()
    except OSError:
        return "?"


def run(ctx: Context, out: Outcome) -> None:
    count, per_folder = ctx.sizes["many_folders"], ctx.sizes["many_folders_images"]
    total = count * per_folder
    stage, names = stage_files(ctx, "folders-stage", total, 4096)
    folders = [ctx.fresh_dir(f"folders-{k:03d}") for k in range(count)]
    one = ctx.fresh_dir("folders-one")
    with AgentProcess(ctx, "one-folder", [one]).start() as one_agent:
        wait_quiet(one_agent, 60)
        one_threads = one_agent.threads()
    shutil.rmtree(one)

    images = [str(folders[i // per_folder] / n) for i, n in enumerate(names)]
    ctx.emulator.command("clear")
    with AgentProcess(ctx, "folders", folders).start() as agent:
        ready = agent.ready_seconds
        wait_quiet(agent, 60)
        ready_threads = agent.threads()
        instances = _inotify_instances(agent.pid)
        sampler = ThreadSampler(agent)
        with SidecarWatch(folders) as watch:
            started = time.monotonic()
            for k, folder in enumerate(folders):
                move_all(names[k * per_folder : (k + 1) * per_folder], stage, folder)
            times = watch.wait(images, timeout=max(300.0, total * 0.05))
        seconds = max(times.values()) - started
        peak = sampler.stop()
        wait_quiet(agent, 60)
        idle_threads = agent.threads()
        uploaded = agent.uploads_logged()
        polling = [line for line in agent.log().splitlines() if "polling" in line]
    requests = ctx.emulator.command("stats")["requests"]
    ctx.emulator.command("clear")
    shutil.rmtree(stage)
    for folder in folders:
        shutil.rmtree(folder)

    label = f"{count} folders of {per_folder} images each (pending, moved in after READY)"
    base = f"agent on 1 folder: {one_threads} threads once idle"
    out.rows.append(Row(label, "threads (/proc/PID/task), peak from READY to the last sidecar", str(peak), base,
                        "", f"≤ {MAX_THREADS}", verdict(peak <= MAX_THREADS)))  # fmt: skip
    out.rows.append(Row(label, "threads once idle", str(idle_threads), base, "", f"≤ {MAX_THREADS}",
                        verdict(idle_threads <= MAX_THREADS)))  # fmt: skip
    limits = (
        f"kernel limits: fs.inotify.max_user_instances {_limit('max_user_instances')}, "
        f"max_user_watches {_limit('max_user_watches')}"
    )
    out.rows.append(Row(label, "log lines saying a folder is polled", str(len(polling)), limits, "",
                        "0 (none falls back to polling)", verdict(not polling)))  # fmt: skip
    out.notes.append(
        f"folders: the agent on {count} empty folders was READY=1 after {ready:.2f} s with {ready_threads} "
        f"threads and {instances} inotify instance(s); {total:,} images of 4 KiB were then renamed in, folder "
        f"after folder, and the last sidecar appeared {seconds:.1f} s after the first rename "
        f"({total / seconds:.0f} files/s; {uploaded:,} uploads in its log, {requests:,} upload requests received by the "
        f"emulator)." + (f" First polling line: {polling[0][:300]}" if polling else "")
    )
