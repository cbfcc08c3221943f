"""PLACEHOLDER of engineer loop's module, for this branch only: `summarize`'s signature (VIDEO.md),
answering as a state folder without any video would. At merge, take loop's `watcher/state/videos.py`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from watcher.core.folders import Folder
from watcher.core.generation import AccountVideos, VideoSummary


def summarize(state_dir: Path, folders: Sequence[Folder], today: str) -> VideoSummary:
    limits: dict[str, tuple[int, int]] = {}
    for folder in folders:
        if folder.generate is not None:
            jobs, cap = limits.get(
                folder.account_key, (folder.generate.max_jobs, folder.generate.max_per_day)
            )
            limits[folder.account_key] = (
                min(jobs, folder.generate.max_jobs),
                min(cap, folder.generate.max_per_day),
            )
    accounts = {
        a: AccountVideos(today=0, cap=cap, in_flight=0, max_jobs=jobs) for a, (jobs, cap) in limits.items()
    }
    return VideoSummary(folders={}, accounts=accounts)
