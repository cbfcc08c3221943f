"""videos-backlog: 10,000 images waiting for video slots; the agent's memory as the queue grows (issue 23).

The images arrive in steps into one `generate` folder whose account has two slots, and the emulator takes
a day to make a video: every image is uploaded, two videos are in flight, the rest wait, journalled.
Baseline: the same agent on the same images in a folder without `generate` (uploads only), so what the
queue itself costs is the difference. The agent's queue is read as `minimax-watcher status --json` reads
it (the videos' journal), in a process of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.agent import AgentProcess
from harness.constants import ACCOUNT, TOKEN
from harness.context import Context
from harness.emulator import EmulatorProcess
from harness.images import move_all, stage_files
from harness.results import Outcome, fmt_mb

from .videos import MAX_JOBS, generate_block

PEAK_TARGET_KB = 60 * 1024
FLAT_BYTES = 2048  # per pending video, beyond the upload-only agent: bookkeeping, no bytes
HOLD_SECONDS = 5.0


@dataclass
class Growth:
    samples: list[tuple[str, int, int]] = field(default_factory=list)  # (label, VmRSS, VmHWM) in kB
    creates: int = 0
    journal_bytes: int = 0
    queued: int = 0
    seconds: float = 0.0

    @property
    def peak(self) -> int:
        return max(s[2] for s in self.samples)


def _uploaded(agent: AgentProcess) -> int:
    found = re.search(r"(\d+) uploaded since start", agent.status())
    return int(found.group(1)) if found else 0


def _videos_waiting(agent: AgentProcess, folder: Path) -> int:
    """Queued + generating videos of `folder` in the agent's journal, as `status --json` shows them."""
    env = dict(os.environ, USEAPI_TOKEN=TOKEN, STATE_DIRECTORY=str(agent.state_dir))
    if agent.agent_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [agent.agent_src, env.get("PYTHONPATH")]))
    shown = subprocess.run(
        [sys.executable, "-m", "watcher", "status", "--json", "--config", str(agent.config_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if shown.returncode != 0:
        raise RuntimeError(f"status --json failed: {shown.stderr[-2000:]}")
    for entry in json.loads(shown.stdout).get("folders", []):
        if entry.get("path") == str(folder) and "videos" in entry:
            videos = entry["videos"]
            return int(videos["queued"]) + int(videos["generating"])
    return 0


def _grow(
    ctx: Context, emu: EmulatorProcess, stage: Path, names: list[str], per_step: int, *, generate: bool
) -> Growth:
    kind = "generate" if generate else "uploads"
    folder = ctx.fresh_dir(f"videos-backlog-{kind}")
    settings = {"account": ACCOUNT} | ({"generate": generate_block()} if generate else {})
    growth = Growth()
    emu.clear()
    agent = AgentProcess(
        ctx, f"videos-backlog-{kind}", [folder], folder_settings={str(folder): settings}, emulator=emu
    )
    started = time.monotonic()
    try:
        with agent.start():
            growth.samples.append(("ready", agent.rss_kb(), agent.hwm_kb()))
            warm = 0
            if generate:  # an agent that has made a video (a download loads what downloads need)
                warm = 1
                emu.configure(generation_seconds=0.5)
                warm_stage, warm_names = stage_files(ctx, "videos-backlog-warm", 1, 4096)
                move_all(warm_names, warm_stage, folder)
                shutil.rmtree(warm_stage)
                deadline = time.monotonic() + 120
                while not list((folder / "videos").glob("*.mp4")):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the warm-up video never reached the disk")
                    time.sleep(0.2)
                emu.configure(generation_seconds=86_400)  # from now on the slots stay taken
                growth.samples.append(("one video made", agent.rss_kb(), agent.hwm_kb()))
            for step in range(0, len(names), per_step):
                move_all(names[step : step + per_step], stage, folder)
                want = step + per_step
                deadline = time.monotonic() + 600
                while _uploaded(agent) < want + warm or (generate and _videos_waiting(agent, folder) < want):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{kind}: {_uploaded(agent)} of {want} uploaded after 600 s")
                    time.sleep(1.0)
                growth.samples.append((f"{want:,}", agent.rss_kb(), agent.hwm_kb()))
            time.sleep(HOLD_SECONDS)  # the generator's loop keeps turning over the queue: still flat?
            growth.samples.append((f"+{HOLD_SECONDS:g} s", agent.rss_kb(), agent.hwm_kb()))
            if generate:
                growth.queued = _videos_waiting(agent, folder)
            growth.seconds = time.monotonic() - started
        growth.creates = len(emu.requests("create"))
        journal = agent.state_dir / "videos.journal"
        growth.journal_bytes = journal.stat().st_size if journal.exists() else 0
    finally:
        for name in names:  # back to the stage for the next agent (those that got there)
            with contextlib.suppress(FileNotFoundError):
                os.rename(folder / name, stage / name)
        shutil.rmtree(folder)
    return growth


def run(ctx: Context, out: Outcome) -> None:
    steps, per_step = ctx.sizes["videos_backlog_steps"], ctx.sizes["videos_backlog_per_step"]
    total = steps * per_step
    stage, names = stage_files(ctx, "videos-backlog", total, 4096)
    emu = EmulatorProcess(ctx.work, (ACCOUNT,), name="emulator-videos-backlog")
    try:
        emu.configure(generation_seconds=86_400, max_jobs=MAX_JOBS)  # the slots stay taken
        uploads = _grow(ctx, emu, stage, names, per_step, generate=False)
        videos = _grow(ctx, emu, stage, names, per_step, generate=True)
    finally:
        emu.stop()
        shutil.rmtree(stage)
    if videos.creates != MAX_JOBS + 1 or videos.queued != total:
        raise RuntimeError(
            f"expected {MAX_JOBS + 1} creates and {total} videos waiting, got {videos.creates} and "
            f"{videos.queued}"
        )

    def per_video(growth: Growth) -> float:  # VmHWM growth per file from the first step to the end
        first = growth.samples[-1 - steps]  # the first step (after ready and any warm-up)
        return (growth.samples[-1][2] - first[2]) * 1024 / max(1, total - per_step)

    beyond = per_video(videos) - per_video(uploads)
    label = f"{total:,} images waiting for video slots (max_jobs {MAX_JOBS})"
    curve = ", ".join(f"{s[0]}: {fmt_mb(s[1])}" for s in videos.samples)
    out.add(
        label,
        "peak RSS (VmHWM)",
        agent=fmt_mb(videos.peak),
        baselines=f"uploads only, same images: {fmt_mb(uploads.peak)}; ready: {fmt_mb(videos.samples[0][2])}",
        ratio=f"+{fmt_mb(videos.peak - uploads.peak)} over uploads only",
        target="≤ 60 MB",
        met=videos.peak <= PEAK_TARGET_KB,
    )
    out.add(
        label,
        "VmHWM growth per pending video, beyond uploads only",
        agent=f"{beyond:.0f} B/video ({per_video(videos):.0f} B/image in all)",
        baselines=f"uploads only: {per_video(uploads):.0f} B/image",
        target=f"flat (≤ {FLAT_BYTES // 1024} KiB/video: bookkeeping, no bytes)",
        met=beyond <= FLAT_BYTES,
    )
    out.notes.append(
        f"videos-backlog: {steps} steps of {per_step:,} images (4 KiB) into one folder of one account, "
        f"generate {{max_jobs {MAX_JOBS}, max_per_day 100,000}}. First one image is made into a video "
        f"(0.5 s), so that the agent measured is one that has downloaded a video (what a download "
        f"loads counts); then the emulator takes a day per video, so {videos.creates} creates "
        f"went out in all and {videos.queued:,} videos wait (queued or generating, read "
        f"with `status --json` after each step). VmRSS with generate: {curve}; uploads only: "
        + ", ".join(f"{s[0]}: {fmt_mb(s[1])}" for s in uploads.samples)
        + f". The videos' journal holds {videos.journal_bytes / total:.0f} B per video "
        f"({videos.journal_bytes / 1e6:.1f} MB). Phases: uploads only {uploads.seconds:.0f} s, with generate "
        f"{videos.seconds:.0f} s (each step waits for its uploads and its videos' entries)."
    )
