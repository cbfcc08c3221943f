"""What the agent must remember across restarts that cannot live beside the images.

Today that is one thing: sidecars whose fileID the API returned while the image's folder refused the
write (read-only, disk full). Keeping them here means a restart in between costs no second upload.
Everything else (what is done, what failed) is read back from the sidecars and error records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.files import FileSignature
from watcher.sidecar import read_record, write_json_atomically

log = logging.getLogger(__name__)

UNWRITTEN_FILE = "unwritten-sidecars.json"
MAX_STATE_BYTES = 64 << 20


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """$STATE_DIRECTORY (systemd's StateDirectory=), else $XDG_STATE_HOME, else ~/.local/state."""
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "minimax-watcher"


@dataclass(frozen=True)
class UnwrittenSidecar:
    sidecar: dict[str, Any]
    signature: FileSignature


class UnwrittenSidecars:
    """Image path → the sidecar waiting to be written, saved to the state folder on every change."""

    def __init__(self, state_dir: Path | None) -> None:
        self._path = state_dir / UNWRITTEN_FILE if state_dir is not None else None
        self._entries: dict[str, UnwrittenSidecar] = {}
        self._warned = False

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def get(self, path: str) -> UnwrittenSidecar | None:
        return self._entries.get(path)

    def items(self) -> list[tuple[str, UnwrittenSidecar]]:
        return list(self._entries.items())

    def paths(self) -> list[str]:
        return list(self._entries)

    def add(self, path: str, sidecar: dict[str, Any], signature: FileSignature) -> None:
        self._entries[path] = UnwrittenSidecar(sidecar, signature)
        self._save()

    def discard(self, path: str) -> None:
        if self._entries.pop(path, None) is not None:
            self._save()

    def load(self) -> None:
        """Read what an earlier run could not write; entries for files that changed since are dropped."""
        if self._path is None:
            return
        data = read_record(str(self._path), max_bytes=MAX_STATE_BYTES)
        if data is None:
            return
        for path, entry in data.get("sidecars", {}).items():
            try:
                signature = FileSignature(
                    int(entry["size"]), int(entry["mtime_ns"]), int(entry.get("ino", 0))
                )
                sidecar = dict(entry["sidecar"])
            except (KeyError, TypeError, ValueError):
                continue
            self._entries[path] = UnwrittenSidecar(sidecar, signature)
        if self._entries:
            log.info("%d sidecars from an earlier run are still waiting to be written", len(self._entries))

    def _save(self) -> None:
        if self._path is None:
            return
        data = {
            "sidecars": {
                path: {
                    "size": e.signature.size,
                    "mtime_ns": e.signature.mtime_ns,
                    "ino": e.signature.ino,
                    "sidecar": e.sidecar,
                }
                for path, e in self._entries.items()
            }
        }
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(str(self._path), data)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot save state in %s (%s): sidecars waiting to be written are kept in memory only",
                    self._path.parent,
                    exc.strerror,
                )
