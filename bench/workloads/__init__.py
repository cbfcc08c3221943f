"""The workloads, one module each, under the names `bench/run.py --only` takes, in the order they run."""

from __future__ import annotations

from collections.abc import Callable

from harness.context import Context
from harness.results import Outcome

from . import backlog, big_file, burst, latency, many_folders, million, startup_idle, videos, videos_backlog

WORKLOADS: dict[str, Callable[[Context, Outcome], None]] = {
    "latency": latency.run,
    "burst": burst.run,
    "big": big_file.run,
    # Before startup: making a million files on ext4 is several times slower for minutes after a mass
    # deletion (the inode allocator steps over recently freed inodes), and startup deletes 200,000.
    "million": million.run,
    "startup": startup_idle.run,
    "folders": many_folders.run,
    "backlog": backlog.run,
    "videos": videos.run,
    "videos-backlog": videos_backlog.run,
}
