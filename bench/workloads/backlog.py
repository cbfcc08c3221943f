"""backlog: files piling up while the API answers 503; memory as the backlog grows. Baseline: RSS at READY."""

from __future__ import annotations

import os
import shutil
import time

from harness.agent import AgentProcess
from harness.context import Context
from harness.images import move_all, stage_files
from harness.results import Outcome, fmt_mb


def run(ctx: Context, out: Outcome) -> None:
    steps, per_step = ctx.sizes["backlog_steps"], ctx.sizes["backlog_per_step"]
    total = steps * per_step
    stage, names = stage_files(ctx, "backlog", total, 4096)
    folder = ctx.fresh_dir("backlog-agent")
    ctx.emulator.clear()
    ctx.emulator.fail_uploads(503)
    samples: list[tuple[str, int, int, int]] = []  # (label, tracked, VmRSS, VmHWM)
    try:
        with AgentProcess(ctx, "backlog", [folder]).start() as agent:
            started = time.monotonic()
            samples.append(("ready", 0, agent.rss_kb(), agent.hwm_kb()))
            for step in range(steps):
                batch = names[step * per_step : (step + 1) * per_step]
                move_all(batch, stage, folder)
                want = (step + 1) * per_step
                deadline = time.monotonic() + 180
                while agent.tracked() < want:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the agent tracks {agent.tracked()} files, expected {want}")
                    time.sleep(0.2)
                time.sleep(1.0)
                samples.append((f"{want:,} pending", agent.tracked(), agent.rss_kb(), agent.hwm_kb()))
            hold = ctx.sizes["backlog_hold"]
            time.sleep(hold)
            samples.append(
                (f"{total:,} pending, +{hold:.0f} s", agent.tracked(), agent.rss_kb(), agent.hwm_kb())
            )
            cpu = agent.cpu_seconds()
            phase = time.monotonic() - started
            stats = ctx.emulator.stats()
            sidecars = [n for n in os.listdir(folder) if n.endswith(".json")]
    finally:
        ctx.emulator.clear()
    shutil.rmtree(stage)
    shutil.rmtree(folder)
    if sidecars:
        raise RuntimeError(f"{len(sidecars)} sidecars were written while the API answered 503")

    first, last = samples[1], samples[-1]
    growth_kb = last[3] - first[3]
    per_file = growth_kb * 1024 / max(1, total - per_step)
    peak = max(s[3] for s in samples)
    flat = per_file <= 2048
    label = f"{total:,} files pending, API answers 503"
    curve = ", ".join(f"{s[0]}: {fmt_mb(s[2])}" for s in samples)
    out.add(
        label,
        "peak RSS (VmHWM)",
        agent=fmt_mb(peak),
        baselines=f"ready: {fmt_mb(samples[0][3])}",
        ratio=f"+{fmt_mb(peak - samples[0][3])} over ready",
        target="≤ 60 MB",
        met=peak <= 60 * 1024,
    )
    out.add(
        label,
        "VmHWM growth per pending file",
        agent=f"{per_file:.0f} B/file",
        baselines=f"from {first[0]} to {last[0]}",
        target="flat (≤ 2 KiB/file: bookkeeping, no bytes)",
        met=flat,
    )
    out.notes.append(
        f"backlog: VmRSS as the backlog grows: {curve}. Over the {phase:.0f} s phase the agent sent "
        f"{stats['requests']:,} upload attempts ({stats['requests'] / phase:.0f}/s; the emulator answered "
        f"{dict(stats['by_status'])}) and used {cpu:.1f} s of CPU: after 3 temporary failures in a row "
        f"the account's backlog is held and one probe upload at a time goes out on the retry schedule "
        f"(watcher/core/accounts.py), instead of every file retrying on its own clock."
    )
