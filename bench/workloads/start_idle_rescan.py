"""The sequence `startup` and `million` share: an agent's starts, idle and rescans on done folders.

Baselines (the agent on as many empty folders, a bare walk, a done-check walk), a first start on a
fresh state folder, a second start on the same one with an idle window, and a third start with a short
rescan_seconds that prices one periodic rescan (bench/README.md, "The start, idle and rescan sequence").
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.agent import AgentProcess, wait_quiet
from harness.baselines import ShellHotFolder, run_client
from harness.context import Context
from harness.dataset import DoneDataset
from harness.results import Outcome, fmt_mb, fmt_s

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
class Figures:
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


def _start(agent: AgentProcess, timeout: float) -> Start:
    agent.start(timeout)
    busy = wait_quiet(agent, timeout)
    return Start(
        agent.ready_seconds, agent.hwm_kb(), busy, agent.uploads_logged(), agent.log().count("polling")
    )


def run_sequence(
    ctx: Context,
    name: str,
    folders: list[Path],
    fill: list[Path],
    per_folder: int,
    *,
    recursive: bool,
    shell: bool,
    timeout: float,
) -> Figures:
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
    ctx.emulator.clear()
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
        uploads = int(ctx.emulator.stats()["requests"])
    finally:
        ctx.emulator.clear()
    return Figures(
        dataset.count, made, empty_ready, empty_hwm, walk, done_walk, first, second, idle, rescan, uploads
    )


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
    agent = AgentProcess(
        ctx, f"{name}-rescans", folders, state_dir=state_dir, recursive=recursive, rescan_seconds=period
    )
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
    return Rescan(period, window, ready, cpu, per_rescan, back_to_back=cpu > 0.8 * window, uploaded=uploaded)


def start_rows(
    out: Outcome, label: str, h: Figures, empties: str, ready_max: float, rss_max_mb: float
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
        out.add(
            label,
            f"time to READY=1, {which}",
            agent=fmt_s(start.ready),
            baselines=walks,
            ratio=f"{start.ready / max(walk['seconds'], 1e-3):.1f} × {walk_name}",
            target=f"≤ {ready_max:g} s",
            met=start.ready <= ready_max,
        )
    memory = f"agent on {empties} {fmt_mb(h.empty_hwm_kb)}; done-check walk {fmt_mb(h.done_walk['vmhwm_kb'])}"
    for start, which in ((h.first, "first start"), (h.second, "second start")):
        out.add(
            label,
            f"peak RSS (VmHWM), {which}",
            agent=fmt_mb(start.hwm_kb),
            baselines=memory,
            ratio=f"+{fmt_mb(start.hwm_kb - h.empty_hwm_kb)} over empty",
            target=f"≤ {rss_max_mb:g} MB",
            met=start.hwm_kb <= rss_max_mb * 1024,
        )


def idle_hour_row(out: Outcome, label: str, h: Figures, target_pct: float = 0.2) -> None:
    """The idle window and one priced rescan, averaged over an hour at the default rescan_seconds."""
    hour = h.idle_hour_share()
    idle_pct = h.idle.runtime / h.idle.seconds * 100
    r = h.rescan
    out.add(
        label,
        "CPU, % of one core over an hour at default settings (idle + a rescan every 300 s)",
        agent=f"{hour:.3f} % (idle {idle_pct:.3f} %; one rescan {r.per_rescan:.2f} s of CPU)",
        baselines=f"bare walk (list + stat, one process) {h.walk['cpu_seconds']:.2f} s of CPU",
        ratio=f"one rescan = {r.per_rescan / max(h.walk['cpu_seconds'], 1e-3):.1f} × walk",
        target=f"≤ {target_pct:g} %",
        met=hour <= target_pct,
    )


def sequence_notes(out: Outcome, name: str, h: Figures) -> None:
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
