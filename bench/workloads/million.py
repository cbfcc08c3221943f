"""million: an agent on one recursive folder holding a million images uploaded long ago.

1,000 subfolders of 1,000 done images each (sealed sidecars, bench/dataset.py), the history a render
node's output folder gathers in months. bench/history.py's sequence: baselines (the agent on an empty
recursive folder, a bare walk and a done-check walk of the tree), a first start on a fresh state folder,
a second start on the same one with an idle window at default settings, and a third start with a short
rescan_seconds that prices one periodic rescan; the idle figure is the hour's average with a rescan
every 300 s. Not one upload may happen. The dataset is made once, used by every start, and removed at
the end (kept with --keep).
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
