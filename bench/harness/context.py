"""What every workload runs in: the work folder, the shared emulator, the sizes, the tools found."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .emulator import EmulatorProcess

# Full sizes are the workloads; quick sizes only prove the machinery works.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "latency_files": 50,
        "burst_files": 2000,
        "big_bytes": 2 * 1000**3,
        "dataset_folders": 10,
        "dataset_per_folder": 10_000,
        "idle_seconds": 60.0,
        "backlog_steps": 4,
        "backlog_per_step": 2500,
        "backlog_hold": 20.0,
        "history_subfolders": 1000,
        "history_per_subfolder": 1000,
        "many_folders": 300,
        "many_folders_images": 100,
        "videos_images": 40,
        "videos_runs": 3,
        "videos_backlog_steps": 4,
        "videos_backlog_per_step": 2500,
    },
    "quick": {
        "latency_files": 6,
        "burst_files": 150,
        "big_bytes": 48 * 1000**2,
        "dataset_folders": 10,
        "dataset_per_folder": 100,
        "idle_seconds": 4.0,
        "backlog_steps": 2,
        "backlog_per_step": 150,
        "backlog_hold": 2.0,
        "history_subfolders": 20,
        "history_per_subfolder": 1000,
        "many_folders": 30,
        "many_folders_images": 10,
        "videos_images": 4,
        "videos_runs": 1,
        "videos_backlog_steps": 2,
        "videos_backlog_per_step": 100,
    },
}


class Context:
    def __init__(self, work: Path, mode: str, agent_src: str | None = None, keep: bool = False) -> None:
        self.work = work
        self.mode = mode
        self.keep = keep  # --keep: leave datasets in the work folder for inspection
        self.agent_src = agent_src
        self.sizes = SIZES[mode]
        self.emulator = EmulatorProcess(work)
        self.tools = {tool: shutil.which(tool) is not None for tool in ("inotifywait", "curl")}

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def fresh_dir(self, name: str) -> Path:
        path = self.work / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def has(self, *tools: str) -> bool:
        return all(self.tools[t] for t in tools)
