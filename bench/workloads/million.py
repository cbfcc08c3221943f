"""million: an agent on one recursive folder holding a million images uploaded long ago.

1,000 subfolders of 1,000 done images each, the history a render node's output folder gathers in
months, through the start, idle and rescan sequence (start_idle_rescan.py); not one upload may happen.
"""

from __future__ import annotations

from harness.context import Context
from harness.dataset import remove
from harness.results import Outcome

from .start_idle_rescan import idle_hour_row, run_sequence, sequence_notes, start_rows


def run(ctx: Context, out: Outcome) -> None:
    subfolders, per_subfolder = ctx.sizes["history_subfolders"], ctx.sizes["history_per_subfolder"]
    root = ctx.fresh_dir("million")
    try:
        fill = [root / f"batch-{k:04d}" for k in range(subfolders)]
        for sub in fill:
            sub.mkdir()
        h = run_sequence(
            ctx, "million", [root], fill, per_subfolder, recursive=True, shell=False, timeout=900
        )
    finally:
        remove(ctx, [root])

    label = f"{h.images:,} done images in {subfolders:,} subfolders, recursive"
    start_rows(out, label, h, "an empty recursive folder", 10, 100)
    logged = h.first.uploaded + h.second.uploaded + h.rescan.uploaded
    out.add(
        label,
        "uploads (three starts, idle, rescans), by the emulator",
        agent=str(h.uploads),
        baselines=f"by the agents' logs: {logged}",
        target="0",
        met=h.uploads == 0 and logged == 0,
    )
    idle_hour_row(out, f"same, idle {h.idle.seconds:.0f} s + one priced rescan", h)
    sequence_notes(out, "million", h)
