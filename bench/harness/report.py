"""The report: bench/RESULTS.md (table, machine, notes) and the summary printed at the end of a run."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from datetime import datetime

from .constants import REPO
from .procfs import meminfo_kb
from .results import Outcome


def machine_lines() -> list[str]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "watcher"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return [
        f"- CPUs: {os.cpu_count()} ({model or 'unknown model'}); memory: "
        f"{meminfo_kb('MemTotal') / 1024 / 1024:.1f} GiB; kernel {platform.release()}; "
        f"Python {platform.python_version()}",
        f"- repository at commit {commit}{' with local changes in watcher/' if dirty else ''}",
    ]


def _agent_src_line(agent_src: str) -> str:
    found = re.search(r"agent-src-([0-9a-f]+)$", agent_src)
    if found:
        return f"- agent run as committed at {found.group(1)} (--agent-rev), not from the working tree"
    return f"- **agent run from {agent_src}** (--agent-src), not from the repository"


def render(
    outcomes: list[Outcome], mode: str, started: datetime, loads: tuple[str, str], agent_src: str | None
) -> str:
    lines = [
        "# minimax-watcher benchmark results",
        "",
        f"Written by `bench/run.py{' --quick' if mode == 'quick' else ''}` on "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}. Every figure is measured in this same run, side by side "
        "with its baselines, against one emulator process on loopback; compare ratios, not absolute "
        "figures: the machine is shared and noisy.",
        "",
        *machine_lines(),
        f"- load average at start {loads[0]}, at end {loads[1]}",
        *([_agent_src_line(agent_src)] if agent_src else []),
        "",
    ]
    if mode == "quick":
        lines += ["**Quick mode**: every workload is scaled down; verdicts are not meaningful.", ""]
    lines += [
        "| workload | figure | agent | baselines (same run) | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        for r in outcome.rows:
            lines.append(
                f"| {r.workload} | {r.figure} | {r.agent} | {r.baselines} | {r.ratio} | {r.target} | "
                f"{'**MISSED**' if r.verdict == 'MISSED' else r.verdict} |"
            )
        if outcome.error:
            lines.append(f"| {outcome.name} | (failed to run) | | | | | error |")
    lines += ["", "## Notes", ""]
    for outcome in outcomes:
        lines.append(f"### {outcome.name} ({outcome.seconds:.0f} s, load average after: {outcome.load})")
        lines.append("")
        for note in outcome.notes:
            lines.append(f"- {note}")
        if outcome.error:
            lines += ["", "```", outcome.error.rstrip(), "```"]
        lines.append("")
    return "\n".join(lines)


def print_table(outcomes: list[Outcome]) -> None:
    rows = [("workload", "figure", "agent", "ratio", "target", "verdict")]
    for outcome in outcomes:
        for r in outcome.rows:
            rows.append((r.workload, r.figure, r.agent, r.ratio, r.target, r.verdict))
        if outcome.error:
            rows.append((outcome.name, "FAILED TO RUN", "", "", "", "error"))
    widths = [min(44, max(len(row[i]) for row in rows)) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)))
