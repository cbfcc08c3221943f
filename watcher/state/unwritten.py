"""Sidecars whose fileID the API returned while the image's folder refused the write (read-only, disk
full), kept in the state folder (`unwritten-sidecars.jsonl`) so that a restart costs no second upload.

A `Journal` whose appends a background thread writes: the agent's loop never waits for the disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watcher.core.ports import UnwrittenSidecar
from watcher.core.signature import FileSignature
from watcher.state.journal import Journal, JournalKind

log = logging.getLogger(__name__)


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """$STATE_DIRECTORY (systemd's StateDirectory=), else $XDG_STATE_HOME, else ~/.local/state."""
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "minimax-watcher"


def _line(path: str, entry: UnwrittenSidecar) -> dict[str, Any]:
    s = entry.signature
    return {"add": path, "size": s.size, "mtime_ns": s.mtime_ns, "ino": s.ino, "sidecar": entry.sidecar}


def _entry(line: dict[str, Any], _earlier: UnwrittenSidecar | None) -> UnwrittenSidecar:
    signature = FileSignature(int(line["size"]), int(line["mtime_ns"]), int(line.get("ino", 0)))
    return UnwrittenSidecar(dict(line["sidecar"]), signature)


SIDECARS = JournalKind(
    file="unwritten-sidecars.jsonl",
    key="add",
    end="discard",
    line=_line,
    entry=_entry,
    unreadable="cannot read %s (%s): sidecars waiting from an earlier run are lost; their files are "
    "uploaded again",
    unsaved="cannot save state in %s (%s): sidecars waiting to be written are kept in memory only",
    max_line_bytes=64 << 10,
)


class UnwrittenSidecars:
    """Image path → the sidecar waiting to be written; the scheduler's `SidecarStore`."""

    def __init__(self, state_dir: Path | None) -> None:
        self._journal = Journal(state_dir, SIDECARS, log, writer="state-journal")

    def items(self) -> list[tuple[str, UnwrittenSidecar]]:
        return self._journal.items()

    def add(self, path: str, sidecar: dict[str, Any], signature: FileSignature) -> None:
        self._journal.add(path, UnwrittenSidecar(sidecar, signature))

    def discard(self, path: str) -> None:
        self._journal.remove(path)

    def load(self) -> None:
        """Read what an earlier run could not write (the scheduler drops entries whose file changed)."""
        self._journal.adopt()
        if len(self._journal):
            log.info("%d sidecars from an earlier run are still waiting to be written", len(self._journal))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting and end the writer thread (at stop; another starts if more comes)."""
        self._journal.close(timeout)
