"""folders: hundreds of watched folders receiving images at once: the agent's threads, and no polling.

Its log must never say a folder is polled (the fallback when inotify runs out of instances or
watches). Baseline: the agent on one folder.
"""

from __future__ import annotations

import shutil
import threading
import time

from harness.agent import AgentProcess, wait_quiet
from harness.context import Context
from harness.images import move_all, stage_files
from harness.procfs import inotify_instances, inotify_limit
from harness.results import Outcome
from harness.sidecar_watch import SidecarWatch

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
    ctx.emulator.clear()
    with AgentProcess(ctx, "folders", folders).start() as agent:
        ready = agent.ready_seconds
        wait_quiet(agent, 60)
        ready_threads = agent.threads()
        instances = inotify_instances(agent.pid)
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
    requests = ctx.emulator.stats()["requests"]
    ctx.emulator.clear()
    shutil.rmtree(stage)
    for folder in folders:
        shutil.rmtree(folder)

    label = f"{count} folders of {per_folder} images each (pending, moved in after READY)"
    base = f"agent on 1 folder: {one_threads} threads once idle"
    out.add(
        label,
        "threads (/proc/PID/task), peak from READY to the last sidecar",
        agent=str(peak),
        baselines=base,
        target=f"≤ {MAX_THREADS}",
        met=peak <= MAX_THREADS,
    )
    out.add(
        label,
        "threads once idle",
        agent=str(idle_threads),
        baselines=base,
        target=f"≤ {MAX_THREADS}",
        met=idle_threads <= MAX_THREADS,
    )
    limits = (
        f"kernel limits: fs.inotify.max_user_instances {inotify_limit('max_user_instances')}, "
        f"max_user_watches {inotify_limit('max_user_watches')}"
    )
    out.add(
        label,
        "log lines saying a folder is polled",
        agent=str(len(polling)),
        baselines=limits,
        target="0 (none falls back to polling)",
        met=not polling,
    )
    out.notes.append(
        f"folders: the agent on {count} empty folders was READY=1 after {ready:.2f} s with {ready_threads} "
        f"threads and {instances} inotify instance(s); {total:,} images of 4 KiB were then renamed in, folder "
        f"after folder, and the last sidecar appeared {seconds:.1f} s after the first rename "
        f"({total / seconds:.0f} files/s; {uploaded:,} uploads in its log, {requests:,} upload requests received by the "
        f"emulator)." + (f" First polling line: {polling[0][:300]}" if polling else "")
    )
