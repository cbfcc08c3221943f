"""startup: an agent started on folders already uploaded (time to READY=1, peak RSS), then left idle.

Baselines: the agent on as many empty folders, a bare done-check walk, the shell hot folder idling on
the same folders; a second agent with a short rescan_seconds prices one periodic rescan.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

from agent_process import AgentProcess
from baselines import ShellHotFolder, run_client
from constants import ACCOUNT
from context import Context
from images import PNG_OVERHEAD, png_bytes
from results import Outcome, Row, fmt_mb, fmt_s, verdict

# Why the target is missed: causes found by profiling (py-spy, yappi, per-thread /proc figures) and by
# measuring prototypes with --agent-src. Printed under the workload whenever its verdict is MISSED.
WHY_MISSED = (
    "why rescans cost: a periodic rescan lists every folder and stats every image (~10 us/file in "
    "watcher/inventory.py walk_candidates); files already known to be done are not passed to the "
    "scheduler, and vanished ones are reconciled per directory (watcher/pathindex.py). At 100,000 "
    "files and rescan_seconds 300 that still averages above 0.2 % of a core; idle between rescans the "
    "agent does not wake at all. An inotify overflow brings a rescan forward, so rescan_seconds can "
    "be raised for large inotify folders (it matters for polling ones)."
)


def _make_uploaded_dataset(ctx: Context, folders: int, per_folder: int) -> list[Path]:
    """`folders` × `per_folder` tiny images, each with a sidecar in the agent's format (matching stat)."""
    paths = []
    n = 0
    for f in range(folders):
        folder = ctx.fresh_dir(f"uploaded-{f:02d}")
        paths.append(folder)
        for i in range(per_folder):
            n += 1
            name = f"img-{i:05d}.png"
            data = png_bytes(f"ds-{f}-{i}", PNG_OVERHEAD + 32)
            image = folder / name
            image.write_bytes(data)
            st = os.stat(image)
            sidecar = {
                "fileID": f"user:1-minimax:{ACCOUNT}-file:{390_000_000_000_000 + n}",
                "ossPath": f"https://oss.example.invalid/{390_000_000_000_000 + n}.png",
                "account": ACCOUNT,
                "file": name,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": hashlib.sha256(data).hexdigest(),
                "contentType": "image/png",
                "uploadedAt": "2026-01-01T00:00:00Z",
            }
            (folder / (name + ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")
    return paths


def run(ctx: Context, out: Outcome) -> None:
    folders, per_folder = ctx.sizes["dataset_folders"], ctx.sizes["dataset_per_folder"]
    total = folders * per_folder
    made = time.monotonic()
    dataset = _make_uploaded_dataset(ctx, folders, per_folder)
    made = time.monotonic() - made

    empties = [ctx.fresh_dir(f"empty-{i:02d}") for i in range(folders)]
    with AgentProcess(ctx, "empty", empties).start() as empty_agent:
        empty_ready, empty_hwm = empty_agent.ready_seconds, empty_agent.hwm_kb()

    walk = run_client(ctx, "done-walk", [str(p) for p in dataset])
    if walk["count"] != total or walk["failed"]:
        raise RuntimeError(f"dataset check failed: {walk}")

    idle_window = ctx.sizes["idle_seconds"]
    # A second agent on the same folders with a short rescan_seconds prices the periodic full rescan,
    # which the default (300 s) keeps out of the idle window; both idle side by side.
    rescan_every = idle_window / 4
    with AgentProcess(ctx, "uploaded", dataset).start() as agent:
        ready, hwm_ready = agent.ready_seconds, agent.hwm_kb()
        shell = ShellHotFolder(ctx, "idle", dataset) if ctx.has("inotifywait", "curl") else None
        rescanner = AgentProcess(ctx, "rescanning", dataset, rescan_seconds=rescan_every).start()
        try:
            time.sleep(1.0 if ctx.quick else 5.0)  # let start-up work (status line, GC) finish
            a_cpu0, a_ns0 = agent.cpu_seconds(), agent.runtime_ns()
            r_ns0 = rescanner.runtime_ns()
            s_cpu0 = shell.cpu_seconds() if shell else 0.0
            started = time.monotonic()
            time.sleep(idle_window)
            elapsed = time.monotonic() - started
            a_cpu = agent.cpu_seconds() - a_cpu0
            a_ns = agent.runtime_ns() - a_ns0
            r_ns = rescanner.runtime_ns() - r_ns0
            rescans = math.floor((time.monotonic() - rescanner.started_at) / rescan_every) - math.floor(
                (started - rescanner.started_at) / rescan_every
            )
            s_cpu = shell.cpu_seconds() - s_cpu0 if shell else math.nan
        finally:
            rescanner.stop()
            if shell is not None:
                shell.stop()
        hwm_end = agent.hwm_kb()
        threads = len(os.listdir(f"/proc/{agent.pid}/task"))
        polling = agent.log().count("polling")
        status = agent.status()
    if f"{total} files already uploaded" not in agent.log() and f"{total} uploaded" not in status:
        found = re.search(r"ready: .*", agent.log())
        out.notes.append(f"start-up log line: {found.group(0) if found else 'missing'}")

    label = f"{folders} folders × {per_folder:,} uploaded, idle {idle_window:.0f} s"
    a_pct = a_cpu / elapsed * 100
    a_pct_ns = a_ns / 1e9 / elapsed * 100
    base = f"shell (inotifywait + bash) {s_cpu / elapsed * 100:.3f} %" if shell else "shell not run"
    out.rows.append(Row(label, "agent CPU, % of one core", f"{a_pct:.3f} % ({a_pct_ns:.3f} % by schedstat)",
                        base, "", "≤ 0.2 %", verdict(a_pct <= 0.2)))  # fmt: skip
    per_rescan = (r_ns - a_ns) / 1e9 / max(1, rescans)
    out.rows.append(Row(label, "CPU of one periodic rescan; averaged over rescan_seconds 300",
                        f"{per_rescan:.2f} s; {per_rescan / 300 * 100:.3f} %", "", "",
                        "(the idle target, over a long run)", verdict(a_pct + per_rescan / 3 <= 0.2)))  # fmt: skip
    label = f"start with {total:,} uploaded images"
    base = (
        f"agent on {folders} empty folders {fmt_s(empty_ready)}; bare done-check walk "
        f"(list, stat, read+parse sidecar) {fmt_s(walk['seconds'])}"
    )
    out.rows.append(Row(label, "time to READY=1", fmt_s(ready), base,
                        f"{ready / max(walk['seconds'], 1e-3):.1f} × walk", "≤ 5 s",
                        verdict(ready <= 5.0)))  # fmt: skip
    base = f"agent on empty folders {fmt_mb(empty_hwm)}; done-check walk {fmt_mb(walk['vmhwm_kb'])}"
    peak = max(hwm_ready, hwm_end)
    out.rows.append(Row(label, "peak RSS (VmHWM)", fmt_mb(peak), base,
                        f"+{fmt_mb(peak - empty_hwm)} over empty", "≤ 150 MB",
                        verdict(peak <= 150 * 1024)))  # fmt: skip
    out.notes.append(
        f"start-up/idle: dataset of {total:,} images + {total:,} sidecars created in {made:.1f} s (warm page "
        f"cache: the agent and the walk read files the suite just wrote). Idle window {elapsed:.1f} s after "
        f"READY; agent CPU {a_cpu:.2f} s by /proc stat ticks (10 ms resolution), {a_ns / 1e9:.3f} s by "
        f"schedstat; {threads} threads; 'polling' mentioned {polling} time(s) in its log. The default "
        f"rescan_seconds (300) is longer than the window, so the periodic full rescan is not in that figure; "
        f"a second agent on the same folders with rescan_seconds {rescan_every:g} idled alongside and did "
        f"{rescans} rescans in the window, using {r_ns / 1e9:.2f} s of CPU: that prices one rescan."
    )
    if a_pct + per_rescan / 3 > 0.2:
        out.notes.append(WHY_MISSED)
    for path in dataset + empties:
        shutil.rmtree(path)
