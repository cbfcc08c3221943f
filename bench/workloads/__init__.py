"""The workloads, one module each, under the names `bench/run.py --only` takes, in the order they run."""

from __future__ import annotations

from collections.abc import Callable

from context import Context
from results import Outcome

from . import backlog, big_file, burst, latency, startup_idle

WORKLOADS: dict[str, Callable[[Context, Outcome], None]] = {
    "latency": latency.run,
    "burst": burst.run,
    "big": big_file.run,
    "startup": startup_idle.run,
    "backlog": backlog.run,
}
