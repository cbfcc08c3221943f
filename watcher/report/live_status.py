"""The running agent's live state, for `minimax-watcher status` in another process.

`agent-status.json` is trusted only while the agent's `flock` on `agent.lock` is held: an agent that died,
kill -9 included, drops the lock, so its stale file is never shown as live.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from watcher.disk.records import read_record, write_json_atomically

log = logging.getLogger("watcher")

LOCK_FILE = "agent.lock"
STATUS_FILE = "agent-status.json"
# The latest uploads (`recent` in `status --json`), kept across restarts: a few lines, rewritten on change.
RECENT_FILE = "recent-uploads.json"
MAX_RECENT = 24
MAX_STATUS_BYTES = 4 << 20
# Where the shipped unit's StateDirectory= puts it: `status` run by root outside the service looks here.
SERVICE_STATE_DIR = Path("/var/lib/minimax-watcher")


class LiveStatusWriter:
    def __init__(self, state_dir: Path | None) -> None:
        self._dir = state_dir
        self._lock_fd: int | None = None
        self._last: dict[str, Any] | None = None
        self._recent: list[dict[str, Any]] | None = None

    @property
    def state_dir(self) -> Path:
        assert self._dir is not None
        return self._dir

    def start(self) -> bool:
        """Take the state folder's agent lock; False (and no publishing) when another agent has it."""
        if self._dir is None:
            return False
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            log.warning(
                "cannot publish the live status in %s (%s); `status` shows what is on disk only",
                self._dir,
                exc.strerror,
            )
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                log.warning(
                    "another agent runs with the state folder %s; this one does not publish its live "
                    "status there (give each agent its own state folder)",
                    self._dir,
                )
            return False
        self._lock_fd = fd
        return True

    def publish(self, snapshot: dict[str, Any]) -> bool:
        """Write `snapshot` if it differs from the last one written; True when it was written."""
        if self._lock_fd is None or self._dir is None or snapshot == self._last:
            return False
        try:
            write_json_atomically(str(self._dir / STATUS_FILE), snapshot)
        except OSError:
            return False
        self._last = snapshot
        return True

    def publish_recent(self, uploads: list[dict[str, Any]]) -> None:
        """Write the latest uploads (newest first) if they changed; only while this agent holds the lock."""
        if self._lock_fd is None or self._dir is None or uploads == self._recent:
            return
        try:
            write_json_atomically(str(self._dir / RECENT_FILE), {"uploads": uploads[:MAX_RECENT]})
        except OSError:
            return
        self._recent = list(uploads)

    def close(self) -> None:
        if self._lock_fd is None or self._dir is None:
            return
        try:
            os.unlink(self._dir / STATUS_FILE)
        except OSError:
            pass
        os.close(self._lock_fd)  # drops the lock
        self._lock_fd = None


def read_live_status(state_dirs: Iterable[Path]) -> dict[str, Any] | None:
    """The live status of an agent running on one of `state_dirs`, or None when none runs there."""
    for state_dir in state_dirs:
        try:
            fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                # Held: an agent runs, and its file (once it has written one) is current.
                status = read_record(str(state_dir / STATUS_FILE), max_bytes=MAX_STATUS_BYTES)
                if status is not None:
                    return status
                continue
            # We got the lock: nobody holds it, so whatever file is there is a dead agent's.
        finally:
            os.close(fd)
    return None


def read_recent(state_dir: Path) -> list[dict[str, Any]]:
    """The latest uploads an agent on `state_dir` recorded (it need not run now), newest first."""
    record = read_record(str(state_dir / RECENT_FILE), max_bytes=1 << 20)
    uploads = record.get("uploads") if record is not None else None
    return [u for u in uploads if isinstance(u, dict)][:MAX_RECENT] if isinstance(uploads, list) else []
