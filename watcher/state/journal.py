"""An append-only file of JSON lines in the state folder: what must survive a kill -9 or a power cut.

Used by the hook runs not finished yet (`watcher.hooks.journal`), the moves to done_dir / failed_dir
(`watcher.state.moves`) and the sidecars waiting to be written (`watcher.state.unwritten`). One JSON object a
line. `append` returns once its lines are written and fsynced; threads appending at once share one fsync
(group commit: a burst of moves pays one journal commit for several files, not one each). A torn last line (a crash mid-append), an oversized line or one that is
not a JSON object is skipped when read. `rewrite` replaces the whole file atomically (compaction). A
write that fails fails every append it carried, and its lines are dropped: memory stays bounded while
the state folder cannot be written, and each owner keeps its entries in memory and says so.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from watcher.disk.files import fsync_folder, write_all


def json_line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


class _Append:
    """One append waiting for its lines to be written: by itself, or by another thread's batch."""

    __slots__ = ("error", "lines", "sync", "written")

    def __init__(self, lines: list[bytes], sync: bool) -> None:
        self.lines, self.sync = lines, sync
        self.written = False
        self.error: OSError | None = None


class JournalFile:
    def __init__(self, path: Path, max_line_bytes: int) -> None:
        self.path = path
        self._max_line_bytes = max_line_bytes
        self.lines = 0  # lines in the file, as far as this process knows (for compaction)
        self._lock = threading.Lock()  # guards the queue below
        self._pending: list[_Append] = []
        self._writing = threading.Lock()  # one writer (or rewriter) at a time

    def read(self) -> Iterator[dict[str, Any]]:
        """Each line's object, oldest first; nothing when the file does not exist. Raises OSError."""
        for raw in self.raw_lines():
            if len(raw) > self._max_line_bytes:
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if isinstance(data, dict):
                yield data

    def raw_lines(self) -> Iterator[bytes]:
        """Each line as written (or torn), oldest first. Raises OSError."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            self.lines = 0
            for raw in f:
                self.lines += 1
                yield raw

    def append(self, lines: Iterable[bytes], *, sync: bool = True) -> None:
        """Write `lines` at the end (fsynced when `sync`: then durable when this returns). Raises
        OSError; lines that could not be written are dropped (their owners keep them in memory)."""
        mine = _Append(list(lines), sync)
        with self._lock:
            self._pending.append(mine)
        with self._writing:
            if not mine.written:  # else another thread's batch carried it
                with self._lock:
                    batch, self._pending = self._pending, []
                error = None
                try:
                    self._write([line for each in batch for line in each.lines], any(e.sync for e in batch))
                except OSError as exc:
                    error = exc
                for each in batch:
                    each.written, each.error = True, error
        if mine.error is not None:
            raise mine.error

    def _write(self, batch: list[bytes], sync: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, b"".join(batch))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.lines += len(batch)

    def rewrite(self, lines: Callable[[], Iterable[bytes]]) -> None:
        """Replace the file with `lines()`, the journal's whole live state: called while no append
        writes, so that it holds every change an append made durable. Raises OSError."""
        with self._writing:
            with self._lock:
                # What is queued now is in the live state `lines()` gives; what comes later is not.
                covered = list(self._pending)
            content = list(lines())
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                write_all(fd, b"".join(content))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_folder(self.path.parent)
            self.lines = len(content)
            with self._lock:
                del self._pending[: len(covered)]
            for each in covered:
                each.written = True
