"""An agent on folders full of history (images uploaded long ago): its starts, its idle, its rescans.

One sequence, shared by `startup` (100,000 done images in 10 folders) and `million` (1,000,000 in 1,000
subfolders of one recursive folder), each on a dataset made once per invocation (bench/dataset.py):

1. baselines: the agent on as many empty folders; a bare walk (list + stat every image, what any start
   or rescan must at least do) and a done-check walk (the same, plus reading and parsing every sidecar:
   what a start without an index must at least do), each in a process of its own;
2. a first start on a fresh state folder: the agent builds whatever it keeps there from the sidecars;
3. a second start on the same state folder (what every restart after that is), then an idle window at
   default settings, the shell hot folder idling alongside when asked;
4. a third start on the same state folder with a short `rescan_seconds`, to price the periodic rescans.

Agents run one after the other, never side by side: each takes the watched folders' locks, and a
second agent on the same folders would stand by without scanning anything. Every start is followed
until the agent goes quiet (work it does after READY=1 counts in its peak RSS), and the emulator
counts the uploads all three made.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from agent_process import AgentProcess
from baselines import ShellHotFolder, run_client
from context import Context
from dataset import DoneDataset
from results import Outcome, Row, fmt_mb, fmt_s, verdict

QUIET_SHARE = 0.05  # of one core: below this for a second, the agent is idle
ROTATION = 48  # rescans in which a periodic rescan lists every directory once (watcher/scan/inventory.py)


@dataclass
class Start:
    ready: float  # Popen → READY=1, s
    hwm_kb: int  # VmHWM once quiet
    busy_after_ready: float  # s from READY=1 until the agent went quiet
    uploaded: int  # uploads its log reports
    polling: int  # log lines mentioning polling


@dataclass
class Idle:
    seconds: float
    cpu: float  # utime + stime, s (10 ms ticks)
    runtime: float  # schedstat, s
    threads: int
    shell_cpu: float = math.nan


@dataclass
class Rescan:
    period: float  # rescan_seconds of the pricing agent
    window: float  # whole periods measured
    ready: float
    cpu: float  # schedstat over the window, s
    per_rescan: float  # s of CPU for one periodic rescan, idle removed
    back_to_back: bool  # rescans took the whole period: per_rescan is a lower bound
    uploaded: int  # uploads its log reports


@dataclass
class History:
    images: int
    made_seconds: float
    empty_ready: float
    empty_hwm_kb: int
    walk: dict[str, float]
    done_walk: dict[str, float]
    first: Start
    second: Start
    idle: Idle
    rescan: Rescan
    uploads: int  # requests the emulator received from the three agents

    def idle_hour_share(self, rescan_seconds: float = 300.0) -> float:
        """% of one core over an hour at default settings: the idle rate plus one rescan per period."""
        idle = self.idle.runtime / self.idle.seconds
        return (idle + self.rescan.per_rescan / rescan_seconds) * 100


def wait_quiet(agent: AgentProcess, timeout: float, share: float = QUIET_SHARE) -> float:
    """Seconds until the agent used less than `share` of a core over a whole second."""
    started = time.monotonic()
    samples = [(started, agent.runtime_ns())]
    while True:
        time.sleep(0.25)
        now = time.monotonic()
        samples.append((now, agent.runtime_ns()))
        past = [s for s in samples if s[0] <= now - 1.0]
        if past:
            t0, ns0 = past[-1]
            if (samples[-1][1] - ns0) / 1e9 < share * (now - t0):
                return t0 - started
        if now - started > timeout:
            return now - started


def _start(agent: AgentProcess, timeout: float) -> Start:
    agent.start(timeout)
    busy = wait_quiet(agent, timeout)
    return Start(
        agent.ready_seconds, agent.hwm_kb(), busy, agent.uploads_logged(), agent.log().count("polling")
    )


def run_history(
    ctx: Context,
    name: str,
    folders: list[Path],
    fill: list[Path],
    per_folder: int,
    *,
    recursive: bool,
    shell: bool,
    timeout: float,
) -> History:
    """The whole sequence on `folders` (watched), after writing `per_folder` done images into each `fill`."""
    made = time.monotonic()
    dataset = DoneDataset(name)
    dataset.fill(fill, per_folder)
    made = time.monotonic() - made

    empties = [ctx.fresh_dir(f"{name}-empty-{i:02d}") for i in range(len(folders))]
    with AgentProcess(ctx, f"{name}-empty", empties, recursive=recursive).start() as empty_agent:
        empty_ready, empty_hwm = empty_agent.ready_seconds, empty_agent.hwm_kb()
    for path in empties:
        shutil.rmtree(path)

    walk = run_client(ctx, "walk", [str(p) for p in folders])
    done_walk = run_client(ctx, "done-walk", [str(p) for p in folders])
    if walk["count"] != dataset.count or done_walk["count"] != dataset.count or done_walk["failed"]:
        raise RuntimeError(f"dataset check failed: {dataset.count} made; walk {walk}; done-walk {done_walk}")

    state_dir = ctx.work / f"{name}-state"
    dataset.install_key(state_dir)
    ctx.emulator.command("clear")
    try:
        agent = AgentProcess(ctx, f"{name}-first", folders, state_dir=state_dir, recursive=recursive)
        with agent:
            first = _start(agent, timeout)

        agent = AgentProcess(ctx, f"{name}-second", folders, state_dir=state_dir, recursive=recursive)
        with agent:
            second = _start(agent, timeout)
            shell_proc = (
                ShellHotFolder(ctx, name, folders) if shell and ctx.has("inotifywait", "curl") else None
            )
            try:
                window = ctx.sizes["idle_seconds"]
                cpu0, ns0 = agent.cpu_seconds(), agent.runtime_ns()
                shell0 = shell_proc.cpu_seconds() if shell_proc else 0.0
                began = time.monotonic()
                time.sleep(window)
                elapsed = time.monotonic() - began
                idle = Idle(
                    elapsed,
                    agent.cpu_seconds() - cpu0,
                    (agent.runtime_ns() - ns0) / 1e9,
                    agent.threads(),
                    shell_proc.cpu_seconds() - shell0 if shell_proc else math.nan,
                )
            finally:
                if shell_proc is not None:
                    shell_proc.stop()
            second.polling = agent.log().count("polling")
            second.uploaded = agent.uploads_logged()

        rescan = _price_rescan(ctx, name, folders, state_dir, recursive, walk["cpu_seconds"], idle, timeout)
        uploads = int(ctx.emulator.command("stats")["requests"])
    finally:
        ctx.emulator.command("clear")
    return History(dataset.count, made, empty_ready, empty_hwm, walk, done_walk, first, second, idle, rescan,
                   uploads)  # fmt: skip


def _price_rescan(
    ctx: Context,
    name: str,
    folders: list[Path],
    state_dir: Path,
    recursive: bool,
    walk_cpu: float,
    idle: Idle,
    timeout: float,
) -> Rescan:
    """CPU of one periodic rescan, averaged over a rotation: an agent with a short rescan_seconds.

    Rescans come every `period`. A rescan may pass over directories unchanged since the last one and
    list each directory again on its own turn, one rescan in ROTATION (watcher/scan/inventory.py
    DirectoryMemo), so one rescan alone may be a cheap or a dear one: the window is ROTATION whole
    periods, in which every turn comes once. Whatever the window's phase, the CPU above idle is then
    one rotation's worth: the tail of the rescan cut at the window's start and the head of the one cut
    at its end are the same turn. The period, half the bare walk's CPU, leaves room for a rescan that
    lists every directory; rescans queued behind the start-up scan are over before the window opens.
    """
    period = max(1.0, round(walk_cpu / 2, 1))
    rounds = 3 if ctx.quick else ROTATION
    agent = AgentProcess(ctx, f"{name}-rescans", folders, state_dir=state_dir, recursive=recursive,
                         rescan_seconds=period)  # fmt: skip
    with agent:
        agent.start(timeout)
        wait_quiet(agent, 60, share=0.8)  # not quiet within a minute: back to back, flagged below
        ns0 = agent.runtime_ns()
        began = time.monotonic()
        time.sleep(rounds * period)
        window = time.monotonic() - began
        cpu = (agent.runtime_ns() - ns0) / 1e9
        ready = agent.ready_seconds
        uploaded = agent.uploads_logged()
    idle_rate = idle.runtime / idle.seconds
    per_rescan = (cpu - idle_rate * window) * period / window
    return Rescan(period, window, ready, cpu, per_rescan, back_to_back=cpu > 0.8 * window,
                  uploaded=uploaded)  # fmt: skip


def remove(ctx: Context, paths: list[Path]) -> None:
    """Remove a dataset (not with --keep: its folders stay in the work folder with the logs)."""
    if ctx.keep:
        return
    paths = [p for p in paths if os.path.lexists(p)]
    subfolders = [e.path for p in paths for e in os.scandir(p) if e.is_dir(follow_symlinks=False)]
    # Unlinking is kernel time, minutes for a million files one by one: threads overlap it.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(shutil.rmtree, subfolders))
        list(pool.map(shutil.rmtree, paths))


def start_rows(
    out: Outcome, label: str, h: History, empties: str, ready_max: float, rss_max_mb: float
) -> None:
    """READY=1 and peak RSS of both starts, against the walks and the agent on empty folders."""
    walks = (
        f"agent on {empties} {fmt_s(h.empty_ready)}; bare walk (list + stat) {fmt_s(h.walk['seconds'])}; "
        f"done-check walk (+ read and parse each sidecar) {fmt_s(h.done_walk['seconds'])}"
    )
    for start, which, walk, walk_name in (
        (h.first, "first start (no state: built from the sidecars)", h.done_walk, "done-check walk"),
        (h.second, "second start (state kept)", h.walk, "bare walk"),
    ):
        out.rows.append(Row(label, f"time to READY=1, {which}", fmt_s(start.ready), walks,
                            f"{start.ready / max(walk['seconds'], 1e-3):.1f} × {walk_name}", f"≤ {ready_max:g} s",
                            verdict(start.ready <= ready_max)))  # fmt: skip
    memory = f"agent on {empties} {fmt_mb(h.empty_hwm_kb)}; done-check walk {fmt_mb(h.done_walk['vmhwm_kb'])}"
    for start, which in ((h.first, "first start"), (h.second, "second start")):
        out.rows.append(Row(label, f"peak RSS (VmHWM), {which}", fmt_mb(start.hwm_kb), memory,
                            f"+{fmt_mb(start.hwm_kb - h.empty_hwm_kb)} over empty", f"≤ {rss_max_mb:g} MB",
                            verdict(start.hwm_kb <= rss_max_mb * 1024)))  # fmt: skip


def idle_hour_row(out: Outcome, label: str, h: History, target_pct: float = 0.2) -> None:
    """The idle window and one priced rescan, averaged over an hour at the default rescan_seconds."""
    hour = h.idle_hour_share()
    idle_pct = h.idle.runtime / h.idle.seconds * 100
    r = h.rescan
    out.rows.append(Row(label, "CPU, % of one core over an hour at default settings (idle + a rescan every 300 s)",
                        f"{hour:.3f} % (idle {idle_pct:.3f} %; one rescan {r.per_rescan:.2f} s of CPU)",
                        f"bare walk (list + stat, one process) {h.walk['cpu_seconds']:.2f} s of CPU",
                        f"one rescan = {r.per_rescan / max(h.walk['cpu_seconds'], 1e-3):.1f} × walk",
                        f"≤ {target_pct:g} %", verdict(hour <= target_pct)))  # fmt: skip


def history_notes(out: Outcome, name: str, h: History) -> None:
    r = h.rescan
    out.notes.append(
        f"{name}: {h.images:,} images + {h.images:,} sealed sidecars created in {h.made_seconds:.1f} s (warm page "
        f"cache: the walks and the agents read files the suite just wrote). First start: READY=1 after "
        f"{fmt_s(h.first.ready)}, busy {h.first.busy_after_ready:.1f} s more, {h.first.uploaded} uploads in "
        f"its log. Second start: READY=1 after {fmt_s(h.second.ready)}, busy {h.second.busy_after_ready:.1f} s "
        f"more, {h.second.uploaded} uploads. Idle window of the second start: {h.idle.seconds:.1f} s at default "
        f"settings, CPU {h.idle.cpu:.2f} s by /proc stat ticks (10 ms resolution), {h.idle.runtime:.3f} s by "
        f"schedstat; {h.idle.threads} threads; 'polling' in its log {h.second.polling} time(s) (first start: "
        f"{h.first.polling}). The emulator received {h.uploads} upload request(s) from the three agents."
    )
    rescan = (
        f"{name}: one periodic rescan priced by a third start on the same state folder with rescan_seconds "
        f"{r.period:.1f} (READY=1 after {fmt_s(r.ready)}): {r.cpu:.2f} s of CPU (schedstat) over "
        f"{r.window:.1f} s ({r.window / r.period:.0f} whole periods: every directory's turn to be listed comes "
        f"once in {ROTATION}), minus the idle rate, is {r.per_rescan:.2f} s per rescan; at the "
        f"default 300 s that adds {r.per_rescan / 3:.3f} % of a core."
    )
    if r.back_to_back:
        rescan += " The rescans took the whole period, back to back: the figure is a lower bound."
    out.notes.append(rescan)
