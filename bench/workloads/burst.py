"""burst: many files renamed into the watched folder at once; files/s to the last sidecar.

Baselines: a bare upload loop over one requests.Session (before and after the agent), useapi.net's
documented recipe, the shell hot folder.
"""

from __future__ import annotations

import functools
import math
import shutil
import time
from pathlib import Path

from harness.agent import AgentProcess
from harness.baselines import ShellHotFolder, run_client
from harness.context import Context
from harness.images import move_all, stage_files
from harness.results import Outcome, fmt_mb
from harness.sidecar_watch import SidecarWatch

SESSION_SHARE = 0.6  # issue 9: the agent's burst rate against the bare session loop's, same run

# Why the target is missed: causes found by profiling (py-spy, yappi, per-thread /proc figures) and by
# measuring prototypes with --agent-src. Printed under the workload whenever its verdict is MISSED.
WHY_MISSED = (
    "why the burst is slower than a bare loop: the agent does per file what the bare loop does not "
    "(settle check, sniff, head hash for dedupe, change check after the upload, a sidecar written with "
    "fsync of the file, its folder's fsync (batched across files: watcher/disk/folder_sync.py), an "
    "error-record cleanup, two rows in the index, metrics and a log line), on several threads that "
    "share the GIL: each system call made while another thread waits for it costs two thread switches, "
    "which this VM makes expensive (perf, 2026-11-30: 26 % of the agent's CPU in the kernel's switch "
    "path). Creating each sidecar costs 0.5-1 ms of kernel CPU on this VM alone (against 7 us on tmpfs): "
    "its disk is ext4 without a journal, whose inode allocator skips, one by one, every inode freed in "
    "the last minutes (recently_deleted, 9 % of the agent's CPU under perf); the bare loop creates no "
    "file. The sidecar's own fsync stays (without it a power cut could leave an empty sidecar). Already "
    "applied: uploads go through urllib3's pool directly, not a requests.Session; events for the "
    "agent's own records are dropped before any event object (watcher/watch/inotify.py); the deadline "
    "thread is not woken per upload; metrics keep their counters; the dedupe's head check is an index "
    "lookup, not a read of every upload of the same size (0.23 ms per file at 2,000 of them). "
    "Concurrency 2, 4 or 8 changes little (within the run-to-run noise of about 15 %)."
)


def _burst_into(ctx: Context, names: list[str], stage: Path, folder: Path) -> tuple[float, SidecarWatch]:
    """Rename every staged file into `folder` at once; seconds until the last sidecar appears."""
    watch = SidecarWatch([folder])
    started = time.monotonic()
    move_all(names, stage, folder)
    times = watch.wait([str(folder / n) for n in names], timeout=max(300.0, len(names) * 0.5))
    return max(times.values()) - started, watch


def _agent_burst(ctx: Context, names: list[str], stage: Path, run_no: int) -> tuple[float, float, int]:
    """One agent, fresh state, one burst: (files/s, CPU seconds during the burst, peak RSS in KiB)."""
    folder = ctx.fresh_dir(f"burst-agent-{run_no}")
    with AgentProcess(ctx, f"burst-{run_no}", [folder]).start() as agent:
        cpu0 = agent.cpu_seconds()
        seconds, watch = _burst_into(ctx, names, stage, folder)
        watch.close()
        cpu = agent.cpu_seconds() - cpu0
        hwm = agent.hwm_kb()
    move_all(names, folder, stage)  # the sidecars stay until the end (see `run`)
    return len(names) / seconds, cpu, hwm


def run(ctx: Context, out: Outcome) -> None:
    count = ctx.sizes["burst_files"]
    stage, names = stage_files(ctx, "burst", count, 256 * 1024)
    listing = ctx.work / "burst-list.txt"
    listing.write_text("".join(f"{stage / n}\n" for n in names))
    base_url = ctx.emulator.base_url

    session = run_client(ctx, "session-loop", [base_url, str(listing)])
    session_rates = [count / session["seconds"]]
    docs = run_client(ctx, "docs-recipe", [base_url, str(listing)])
    docs_rate = count / docs["seconds"]

    shell_rate = math.nan
    if ctx.has("inotifywait", "curl"):
        folder = ctx.fresh_dir("burst-shell")
        with ShellHotFolder(ctx, "burst", [folder]) as shell:
            seconds, watch = _burst_into(ctx, names, stage, folder)
            watch.close()
            if shell.failures():
                raise RuntimeError(f"the shell baseline reported {shell.failures()} failed uploads")
        shell_rate = count / seconds
        move_all(names, folder, stage)

    # Two agent runs, as there are two session-loop runs: one run moves by ±15 % on this VM. Each
    # run's sidecars are deleted only at the end: on this VM's disk a run right after thousands of
    # deletions pays for them in every file it creates (bench/README.md, "The reference VM's disk").
    agent_runs = [_agent_burst(ctx, names, stage, run_no) for run_no in (1, 2)]
    agent_rate = sum(rate for rate, _, _ in agent_runs) / len(agent_runs)
    agent_cpu = sum(cpu for _, cpu, _ in agent_runs) / len(agent_runs)
    agent_hwm = max(hwm for _, _, hwm in agent_runs)

    session_rates.append(count / run_client(ctx, "session-loop", [base_url, str(listing)])["seconds"])
    session_rate = sum(session_rates) / len(session_rates)
    shutil.rmtree(stage)
    for used in ("burst-shell", "burst-agent-1", "burst-agent-2"):
        shutil.rmtree(ctx.work / used, ignore_errors=True)

    label = f"burst of {count} × 256 KiB"
    runs = ", ".join(f"{rate:.0f}" for rate, _, _ in agent_runs)
    base = (
        f"session loop {session_rate:.0f}/s (runs: {', '.join(f'{r:.0f}' for r in session_rates)}); "
        f"docs recipe {docs_rate:.0f}/s; shell {shell_rate:.1f}/s"
    )
    agent = f"{agent_rate:.0f}/s (runs: {runs})"
    rate_row = functools.partial(out.add, label, "files/s to the last sidecar", agent=agent, baselines=base)
    rate_row(
        ratio=f"{agent_rate / session_rate:.2f} × session loop",
        target=f"≥ {SESSION_SHARE:g} × session loop (issue 9; issue 5 asked 0.8)",
        met=agent_rate >= SESSION_SHARE * session_rate,
    )
    if not math.isnan(shell_rate):
        rate_row(
            ratio=f"{agent_rate / shell_rate:.1f} × shell",
            target="≥ 5 × shell",
            met=agent_rate >= 5 * shell_rate,
        )
    out.notes.append(
        f"burst: the files are written to a staging folder first, then renamed into the watched folder in "
        f"one go (as rsync or a render farm's final move does); the clock runs from the first rename to the "
        f"last sidecar. The session loop and docs recipe read the same staged files. The agent runs twice, "
        f"each time a fresh process with a fresh state folder, between the two session-loop runs. Agent "
        f"CPU during a burst: {agent_cpu:.2f} s on average ({agent_cpu / count * 1000:.2f} ms/file; runs: "
        f"{', '.join(f'{cpu / count * 1000:.2f}' for _, cpu, _ in agent_runs)}); the session loop process used "
        f"{session['cpu_seconds'] / count * 1000:.2f} ms/file, the docs recipe "
        f"{docs['cpu_seconds'] / count * 1000:.2f} ms/file (interpreter start included). Agent peak RSS "
        f"{fmt_mb(agent_hwm)}. Every file has the same size; the agent's dedupe compares the first "
        f"64 KiB before it would hash a file in full."
    )
    if agent_rate < SESSION_SHARE * session_rate or agent_rate < 5 * shell_rate:
        out.notes.append(WHY_MISSED)
