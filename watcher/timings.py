"""The agent's fixed waits, as one value: the service uses the defaults, tests pass shorter ones."""

from __future__ import annotations

from dataclasses import dataclass


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
