"""The agent's fixed waits, as one value: the service uses the defaults; tests that run the agent as a
process shorten them through $MINIMAX_WATCHER_TIMINGS (`sidecar_retry=1,root_recheck=0.5`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

TIMINGS_ENV = "MINIMAX_WATCHER_TIMINGS"

log = logging.getLogger("watcher")


@dataclass(frozen=True)
class Timings:
    # A folder refused a sidecar (read-only, disk full): try writing it again this often.
    sidecar_retry: float = 15.0
    # A watched folder vanished: look for it again this often.
    root_recheck: float = 5.0
    # SIGTERM: uploads in flight get this long to finish and write their sidecars.
    stop_grace: float = 5.0
    # STATUS= (and the live status file) at most this often, and only when something changed.
    status_interval: float = 2.0
    # The kernel's inotify queue overflowed: rescan after this, so the burst that overflowed it lands.
    overflow_rescan_delay: float = 0.5
    # Another agent holds a folder: try its lock again this often (SPEC §6c: taken over within 10 s).
    lock_retry: float = 3.0
    # A held folder lock: check this often that its file is still the one at the lock name.
    lock_check: float = 10.0
    # Folders left unwatched for want of file descriptors: try them again this often.
    descriptor_retry: float = 30.0
    # Before READY, while the start-up scan makes progress: ask systemd for more start time this often
    # (a first start reads every sidecar to build the index: minutes for a million files).
    start_progress: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Timings:
        """The defaults, with what $MINIMAX_WATCHER_TIMINGS overrides (`name=seconds,...`)."""
        text = (os.environ if env is None else env).get(TIMINGS_ENV, "")
        known = {f.name for f in dataclasses.fields(cls)}
        changes: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if name not in known or not seconds > 0:
                names = ", ".join(sorted(known))
                log.warning("%s: ignoring %r (expected name=seconds, names: %s)", TIMINGS_ENV, item, names)
                continue
            changes[name] = seconds
        return dataclasses.replace(cls(), **changes)
