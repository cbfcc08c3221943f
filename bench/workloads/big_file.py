"""big: one big file renamed in; upload throughput and peak RSS. Baselines: curl -T, the docs recipe."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import time
from typing import Any

from harness.agent import AgentProcess
from harness.baselines import run_client, run_curl_upload
from harness.context import Context
from harness.images import write_big_png
from harness.procfs import meminfo_kb
from harness.results import Outcome, fmt_mb
from harness.sidecar_watch import SidecarWatch

# Why the target is missed: causes found by profiling (py-spy, yappi, per-thread /proc figures) and by
# measuring prototypes with --agent-src. Printed under the workload whenever its verdict is MISSED.
WHY_MISSED = (
    "why the big file can be slower than curl: the agent must sha256 the bytes it sends (SPEC §6); "
    "large bodies are hashed on a helper thread one chunk behind the socket (watcher/upload/client.py "
    "HashingReader), so hashing and sending overlap, but on 2 cores the emulator's receiving, the "
    "agent's sending and its hashing still compete for CPU, and runs swing between 0.6 and 1.0 x curl. "
    "Against the real API (~1 min per GB) the difference is moot."
)


def run(ctx: Context, out: Outcome) -> None:
    size = ctx.sizes["big_bytes"]
    stage = ctx.fresh_dir("big-stage")
    big = stage / "big.png"
    free = shutil.disk_usage(ctx.work).free
    if free < size * 2:
        raise RuntimeError(f"not enough disk for the big file: {free} bytes free, need {2 * size}")
    written = time.monotonic()
    write_big_png(big, size)
    written = time.monotonic() - written
    mb = size / 1e6

    curl_runs = [run_curl_upload(ctx, big)] if ctx.has("curl") else []
    docs: dict[str, Any] | None = None
    if meminfo_kb("MemAvailable") * 1024 > size * 2 + (1 << 30):
        listing = ctx.work / "big-list.txt"
        listing.write_text(f"{big}\n")
        docs = run_client(ctx, "docs-recipe", [ctx.emulator.base_url, str(listing)])

    folder = ctx.fresh_dir("big-agent")
    with AgentProcess(ctx, "big", [folder]).start() as agent:
        hwm_ready = agent.hwm_kb()
        watch = SidecarWatch([folder])
        started = time.monotonic()
        os.rename(big, folder / big.name)
        peak = 0
        target = str(folder / big.name)
        while target not in watch.seen:
            peak = max(peak, agent.hwm_kb())
            with contextlib.suppress(TimeoutError):
                watch.wait([target], timeout=0.2)
        end_to_end = watch.seen[target] - started
        watch.close()
        peak = max(peak, agent.hwm_kb())
        # The loop logs the upload just after the worker renamed the sidecar into place.
        logged_by = time.monotonic() + 10.0
        while (found := re.search(r"big\.png: uploaded in ([0-9.]+) s", agent.log())) is None:
            if time.monotonic() > logged_by:
                break
            time.sleep(0.05)
        upload_seconds = float(found.group(1)) if found else math.nan
    if ctx.has("curl"):
        curl_runs.append(run_curl_upload(ctx, folder / big.name))
    os.unlink(folder / big.name)

    label = f"one {size / 1e9:.2f} GB file"
    agent_rate = mb / upload_seconds
    e2e_rate = mb / end_to_end
    parts = []
    curl_rate = math.nan
    if curl_runs:
        curl_rate = sum(mb / r["seconds"] for r in curl_runs) / len(curl_runs)
        runs = ", ".join(f"{mb / r['seconds']:.0f}" for r in curl_runs)
        parts.append(f"curl -T {curl_rate:.0f} MB/s (runs: {runs})")
    if docs is not None:
        parts.append(f"docs recipe {mb / docs['seconds']:.0f} MB/s")
    base = "; ".join(parts) or "curl not available"
    ratio = f"{agent_rate / curl_rate:.2f} × curl" if curl_runs else ""
    out.add(
        label,
        "upload throughput (agent's own upload time)",
        agent=f"{agent_rate:.0f} MB/s",
        baselines=base,
        ratio=ratio,
        target="≥ 0.9 × curl -T",
        met=(agent_rate >= 0.9 * curl_rate) if curl_runs else None,
    )
    out.add(
        label,
        "throughput, rename → sidecar",
        agent=f"{e2e_rate:.0f} MB/s",
        baselines=base,
        ratio=f"{e2e_rate / curl_rate:.2f} × curl" if curl_runs else "",
    )
    rss_base = [f"curl {fmt_mb(max(r['vmhwm_kb'] for r in curl_runs))}"] if curl_runs else []
    if docs is not None:
        rss_base.append(f"docs recipe {fmt_mb(docs['vmhwm_kb'])}")
    out.add(
        label,
        "peak RSS (VmHWM)",
        agent=fmt_mb(peak),
        baselines="; ".join(rss_base),
        target="≤ 80 MB",
        met=peak <= 80 * 1024,
    )
    out.notes.append(
        f"big file: {size} bytes (a random 1 MiB block repeated), written in {written:.1f} s and in the page "
        f"cache for every run. The agent's upload time ({upload_seconds:.2f} s) is the one it logs for the "
        f"file (open, stream with sha256, answer, change check); rename → sidecar ({end_to_end:.2f} s) adds "
        f"the 0.2 s close-confirmation and the sidecar's fsync. The agent's VmHWM was {fmt_mb(hwm_ready)} at "
        f"READY, before the file arrived."
    )
    if curl_runs and agent_rate < 0.9 * curl_rate:
        out.notes.append(WHY_MISSED)
    if docs is None:
        out.notes.append("docs recipe skipped on the big file: not enough free memory to hold it")
