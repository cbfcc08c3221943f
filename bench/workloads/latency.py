"""latency: files written one at a time; seconds from each writer's close to its sidecar. Baseline: shell."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from harness.agent import AgentProcess
from harness.baselines import ShellHotFolder
from harness.context import Context
from harness.images import png_bytes
from harness.results import Outcome, fmt_s, percentile
from harness.sidecar_watch import SidecarWatch

# Why the target is missed: causes found by profiling (py-spy, yappi, per-thread /proc figures) and by
# measuring prototypes with --agent-src. Printed under the workload whenever its verdict is MISSED.
WHY_MISSED = (
    "why the agent is slower than the shell: every file waits the 0.2 s confirmation after its close "
    "event (watcher/core/settle.py DEFAULT_CONFIRM_SECONDS, scheduled in watcher/core/scheduler.py _on_event); the "
    "real work after it is a few ms. The shell uploads on the event alone, which SPEC §5 forbids "
    "('never to zero confirmation'): beating it needs a confirmation shorter than the shell's ~12 ms, "
    "i.e. effectively none. Target not reachable without changing the contract."
)


def one_at_a_time(folder: Path, watch: SidecarWatch, count: int, tag: str) -> list[float]:
    """Write `count` 1 MiB images one after the other; seconds from each writer's close to its sidecar."""
    latencies = []
    for i in range(count):
        data = png_bytes(f"{tag}-{i}", 1 << 20)
        path = folder / f"{tag}-{i:03d}.png"
        with open(path, "wb") as out:
            out.write(data)
        closed = time.monotonic()
        appeared = watch.wait([str(path)], timeout=30)[str(path)]
        latencies.append(appeared - closed)
        time.sleep(0.1)  # one at a time: the next file arrives once the previous one is done
    return latencies


def run(ctx: Context, out: Outcome) -> None:
    count = ctx.sizes["latency_files"]
    shell: list[float] = []
    if ctx.has("inotifywait", "curl"):
        folder = ctx.fresh_dir("latency-shell")
        with ShellHotFolder(ctx, "latency", [folder]), SidecarWatch([folder]) as watch:
            shell = one_at_a_time(folder, watch, count, "shell")
    folder = ctx.fresh_dir("latency-agent")
    with AgentProcess(ctx, "latency", [folder]).start(), SidecarWatch([folder]) as watch:
        agent = one_at_a_time(folder, watch, count, "agent")
    a50, a95 = percentile(agent, 50), percentile(agent, 95)
    label = f"{count} × 1 MiB, one at a time"
    base, ratio = "shell: not run (no inotifywait/curl)", ""
    if shell:
        s50, s95 = percentile(shell, 50), percentile(shell, 95)
        base, ratio = f"shell: p50 {fmt_s(s50)}, p95 {fmt_s(s95)}", f"{a50 / s50:.1f} × shell"
    p50_row = functools.partial(out.add, label, agent=fmt_s(a50), baselines=base, ratio=ratio)
    p50_row("close → sidecar, p50", target="≤ 0.5 s", met=a50 <= 0.5)
    if shell:
        p50_row("close → sidecar, p50 vs shell", target="< shell", met=a50 < s50)
        p95_ratio = f"{a95 / s95:.1f} × shell"
        out.add(label, "close → sidecar, p95", agent=fmt_s(a95), baselines=base, ratio=p95_ratio)
    out.notes.append(
        f"agent latencies (s): min {min(agent):.3f}, p50 {a50:.3f}, p95 {a95:.3f}, max {max(agent):.3f}; "
        "default settings (settle_seconds 2), so each file waits the agent's 0.2 s close-confirmation window "
        f"(README: 'a 0.2 s confirmation is enough'): p50 minus 0.2 s = {fmt_s(a50 - 0.2)} of real work."
    )
    if shell and percentile(agent, 50) >= percentile(shell, 50):
        out.notes.append(WHY_MISSED)
    if shell:
        out.notes.append(
            f"shell latencies (s): min {min(shell):.3f}, p50 {percentile(shell, 50):.3f}, "
            f"max {max(shell):.3f} (curl starts on close_write, no confirmation at all)."
        )
