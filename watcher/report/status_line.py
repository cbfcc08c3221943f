"""The one line systemd shows for the agent (`STATUS=`, `systemctl status`): counts, pauses, standbys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.wording import count
from watcher.redact import redact

if TYPE_CHECKING:
    from watcher.core.scheduler import Summary


def status_line(summary: Summary, standing_by: int, blocked: int) -> str:
    """`standing_by`: folders another agent holds; `blocked`: folders whose lock name is not a lock file."""
    parts = [
        f"{count(summary.folders, 'folder')} watched",
        f"{summary.uploading} uploading",
        f"{summary.pending} pending",
        f"{summary.failed} failed",
        f"{summary.uploaded} uploaded since start",
    ]
    if summary.paused:
        parts.append("paused: " + summary.paused)
    if standing_by:
        parts.append(f"standing by for {count(standing_by, 'folder')} another agent holds")
    if blocked:
        parts.append(
            f"{count(blocked, 'folder')} not held: {'its' if blocked == 1 else 'their'} lock name is not a lock file"
        )
    # A pause reason quotes an error; STATUS= leaves the process, so it is redacted like the log.
    return redact("; ".join(parts))
