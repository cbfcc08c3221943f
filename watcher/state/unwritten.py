"""What the agent must remember across restarts that cannot live beside the images.

Today that is one thing: sidecars whose fileID the API returned while the image's folder refused the
write (read-only, disk full). Keeping them here means a restart in between costs no second upload.
Everything else (what is done, what failed) is read back from the sidecars and error records.

They are kept in an append-only journal (`unwritten-sidecars.jsonl`, one JSON line per change:
`watcher.state.journal`), so a
change costs one short append whatever the number of waiting sidecars, and a background thread does
the appends and their fsyncs, a batch at a time: the agent's loop never waits for the disk. A torn
last line (a crash mid-append) is skipped when the journal is read; the journal is compacted when it
holds many more lines than live entries.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.core.signature import FileSignature
from watcher.disk.records import read_record
from watcher.state.journal import JournalFile
from watcher.state.seal import SEAL_KEY_FILE as SEAL_KEY_FILE  # the seal key lives in the state folder too
from watcher.state.seal import load_seal_key as load_seal_key

log = logging.getLogger(__name__)

JOURNAL_FILE = "unwritten-sidecars.jsonl"
LEGACY_FILE = "unwritten-sidecars.json"  # the whole-file format of versions before the journal
MAX_LINE_BYTES = 64 << 10
COMPACT_AFTER = 1000  # lines beyond twice the live entries before the journal is rewritten


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


def _add_line(path: str, entry: UnwrittenSidecar) -> bytes:
    s = entry.signature
    line = {"add": path, "size": s.size, "mtime_ns": s.mtime_ns, "ino": s.ino, "sidecar": entry.sidecar}
    return (json.dumps(line, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def _discard_line(path: str) -> bytes:
    return (json.dumps({"discard": path}, ensure_ascii=True) + "\n").encode()


class UnwrittenSidecars:
    """Image path → the sidecar waiting to be written; the scheduler's `SidecarStore`."""

    def __init__(self, state_dir: Path | None) -> None:
        self._dir = state_dir
        self._entries: dict[str, UnwrittenSidecar] = {}
        self._file = JournalFile(state_dir / JOURNAL_FILE, MAX_LINE_BYTES) if state_dir is not None else None
        # Lines to append, events to set once they are written, and None: the writer's end (`close`).
        self._pending: queue.SimpleQueue[bytes | threading.Event | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _entries against the writer's compaction
        self._warned = False

    @property
    def _journal(self) -> Path | None:
        return self._dir / JOURNAL_FILE if self._dir is not None else None

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> UnwrittenSidecar | None:
        return self._entries.get(path)

    def items(self) -> list[tuple[str, UnwrittenSidecar]]:
        with self._lock:
            return list(self._entries.items())

    def add(self, path: str, sidecar: dict[str, Any], signature: FileSignature) -> None:
        entry = UnwrittenSidecar(sidecar, signature)
        with self._lock:
            self._entries[path] = entry
        self._append(_add_line(path, entry))

    def discard(self, path: str) -> None:
        with self._lock:
            if self._entries.pop(path, None) is None:
                return
        self._append(_discard_line(path))

    # ---- reading at start ------------------------------------------------------------------------

    def load(self) -> None:
        """Read what an earlier run could not write (the scheduler drops entries whose file changed)."""
        journal = self._journal
        if journal is None or self._dir is None or self._file is None:
            return
        self._load_legacy(self._dir / LEGACY_FILE)
        try:
            for raw in self._file.raw_lines():
                self._replay(raw)
        except OSError as exc:
            log.warning("cannot read %s (%s): sidecars waiting from an earlier run are lost; their "
                        "files are uploaded again", journal, exc.strerror)  # fmt: skip
        if self._entries:
            log.info("%d sidecars from an earlier run are still waiting to be written", len(self._entries))

    def _replay(self, raw: bytes) -> None:
        if len(raw) > MAX_LINE_BYTES:
            return
        try:
            line = json.loads(raw)
            if "discard" in line:
                self._entries.pop(str(line["discard"]), None)
                return
            signature = FileSignature(int(line["size"]), int(line["mtime_ns"]), int(line.get("ino", 0)))
            self._entries[str(line["add"])] = UnwrittenSidecar(dict(line["sidecar"]), signature)
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # a torn last line after a crash, or not ours

    def _load_legacy(self, legacy: Path) -> None:
        data = read_record(str(legacy), max_bytes=64 << 20)
        if data is None:
            return
        for path, entry in data.get("sidecars", {}).items():
            try:
                signature = FileSignature(
                    int(entry["size"]), int(entry["mtime_ns"]), int(entry.get("ino", 0))
                )
                self.add(path, dict(entry["sidecar"]), signature)
            except (KeyError, TypeError, ValueError):
                continue
        self.flush()
        try:
            legacy.unlink()
        except OSError:
            pass

    # ---- the writer thread -----------------------------------------------------------------------

    def _append(self, line: bytes) -> None:
        if self._dir is None:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="state-journal", daemon=True)
            self._writer.start()
        self._pending.put(line)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything appended so far is on disk (at stop, and in tests)."""
        if self._writer is None:
            return
        done = threading.Event()
        self._pending.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting and end the writer thread (at stop; another starts if more comes)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._pending.put(None)
            writer.join(timeout)

    def _write_loop(self) -> None:
        while True:
            batch = [self._pending.get()]
            while True:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            lines = [item for item in batch if isinstance(item, bytes)]
            if lines:
                self._write(lines)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if None in batch:
                return

    def _write(self, lines: list[bytes]) -> None:
        assert self._file is not None
        try:
            with self._lock:
                compact = self._file.lines + len(lines) > 2 * len(self._entries) + COMPACT_AFTER
            if compact:
                self._file.rewrite(self._live_lines)
            else:
                self._file.append(lines)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot save state in %s (%s): sidecars waiting to be written are kept in "
                            "memory only", self._dir, exc.strerror)  # fmt: skip

    def _live_lines(self) -> list[bytes]:
        """The journal as just its live entries (compaction)."""
        with self._lock:
            return [_add_line(path, entry) for path, entry in self._entries.items()]
