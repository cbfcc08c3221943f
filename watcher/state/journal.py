"""Append-only journals of JSON lines in the state folder: what must survive a kill -9 or a power cut.

`JournalFile` is the file (group-committed appends, atomic rewrites); `Journal` keeps a user's live
entries by key and journals each change, each user supplying its `JournalKind` (see
docs/architecture.md, "The state folder").
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

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
    """One journal's file. Threads appending at once share one write and one fsync (group commit); a
    write that fails fails every append it carried and drops their lines (their owners keep them in
    memory). Reading skips torn, oversized and foreign lines."""

    def __init__(self, path: Path, max_line_bytes: int) -> None:
        self.path = path
        self._max_line_bytes = max_line_bytes
        self.lines = 0  # lines in the file, as far as this process knows (for compaction)
        self._lock = threading.Lock()  # guards the queue below
        self._pending: list[_Append] = []
        self._writing = threading.Lock()  # one writer (or rewriter) at a time

    def read(self) -> Iterator[dict[str, Any]]:
        """Each line's object, oldest first (the lines counted as they go); nothing when the file does
        not exist. Raises OSError."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            self.lines = 0
            for raw in f:
                self.lines += 1
                if len(raw) > self._max_line_bytes:
                    continue
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    yield data

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


E = TypeVar("E")

COMPACT_AFTER = 1000  # lines beyond twice the live entries before a journal is rewritten with just those


@dataclass(frozen=True)
class JournalKind(Generic[E]):
    """What one journal holds, and how its lines say it: each user of `Journal` supplies one.

    `line(key, entry)` is the line that adds (or replaces) an entry, holding its key in the field `key`;
    `{end: key}` ends it; `{field: key, ...}`, for a field of `notes`, changes a live entry
    (`notes[field](line, entry)` gives it changed). Read back, `entry(line, earlier)` is the entry an add
    line holds (`earlier`: the one it replaces, if any); it raises ValueError, KeyError or TypeError for
    a line that is not one. The messages are warnings with the file (or folder) and the reason.

    A new journal is a kind and a `Journal` (`watcher.state.moves` is one): `add(key, entry)` returns
    once the line is fsynced (before the action it announces), `remove(key)` once the action is done,
    `adopt()` at start gives what an earlier process left.
    """

    file: str  # its name in the state folder
    key: str
    end: str
    line: Callable[[str, E], dict[str, Any]]
    entry: Callable[[dict[str, Any], E | None], E]
    unreadable: str  # when the file cannot be read at start: "cannot read %s (%s): what is lost"
    unsaved: str  # said once, when it cannot be written: "cannot save ... in %s (%s): what it costs"
    max_line_bytes: int = 1 << 20
    notes: Mapping[str, Callable[[dict[str, Any], E], E]] = field(default_factory=dict)


class Journal(Generic[E]):
    """Live entries by key, each change journalled in the state folder (without one, kept in memory).

    A change is appended, fsynced unless `sync=False`, before the call returns; with `writer` (a thread's
    name) it is handed to that thread, which writes batches, so the caller never waits for the disk. A
    journal that cannot be written keeps its entries in memory and warns once.
    """

    def __init__(
        self, state_dir: Path | None, kind: JournalKind[E], log: logging.Logger, *, writer: str | None = None
    ) -> None:
        self.kind = kind
        self.file = JournalFile(state_dir / kind.file, kind.max_line_bytes) if state_dir is not None else None
        self._log = log
        self._live: dict[str, E] = {}
        # Guards `_live`. Appends run outside it, so that threads appending at once share one fsync; a
        # rewrite takes it to read `_live`, which already holds what any waiting append carries.
        self._lock = threading.Lock()
        self._warned = False
        self._writer = _Writer(self._write, writer) if writer is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def items(self) -> list[tuple[str, E]]:
        with self._lock:
            return list(self._live.items())

    def read(self) -> dict[str, E]:
        """The entries the file holds, oldest first, changing nothing; what could be read, when it
        cannot be read to its end (a warning says so)."""
        found: dict[str, E] = {}
        if self.file is None:
            return found
        try:
            for line in self.file.read():
                try:
                    self._replay(line, found)
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a torn last line after a crash, or not ours
        except OSError as exc:
            self._log.warning(self.kind.unreadable, self.file.path, exc.strerror)
        return found

    def _replay(self, line: dict[str, Any], found: dict[str, E]) -> None:
        kind = self.kind
        if kind.end in line:
            found.pop(_key(line[kind.end]), None)
            return
        for name, change in kind.notes.items():
            if name in line:
                key = _key(line[name])
                if key in found:
                    found[key] = change(line, found[key])
                return
        key = _key(line[kind.key])
        found[key] = kind.entry(line, found.get(key))

    def adopt(self) -> dict[str, E]:
        """`read`, the entries not live here yet made live; those entries."""
        found = self.read()
        with self._lock:
            new = {key: entry for key, entry in found.items() if key not in self._live}
            self._live.update(new)
        return new

    def add(self, key: str, entry: E, *, sync: bool = True, strict: bool = False) -> None:
        """Add or replace `key`'s entry. `strict`: raise OSError when it could not be made durable (the
        entry stays live), for a caller that must not act without it (a create that spends money)."""
        with self._lock:
            self._live[key] = entry
        self._send(self.kind.line(key, entry), sync, strict)

    def update(self, key: str, change: Callable[[E], E], *, sync: bool = True) -> E | None:
        """Replace the live entry `key` with `change(entry)`; that, or None when `key` is not live."""
        with self._lock:
            entry = self._live.get(key)
            if entry is None:
                return None
            entry = self._live[key] = change(entry)
        self._send(self.kind.line(key, entry), sync)
        return entry

    def note(self, name: str, key: str, data: dict[str, Any], *, sync: bool = True) -> None:
        """Journal `{name: key, **data}` (a change `kind.notes[name]` replays) while `key` is live."""
        with self._lock:
            if key not in self._live:
                return
        self._send({name: key, **data}, sync)

    def remove(self, key: str, *, sync: bool = True) -> E | None:
        """End `key`'s entry; the entry, or None when it was not live."""
        with self._lock:
            entry = self._live.pop(key, None)
        if entry is not None:
            self._send({self.kind.end: key}, sync)
        return entry

    def compact(self) -> None:
        """Rewrite the file as just the live entries."""
        if self.file is None:
            return
        try:
            if not self._live and not self.file.path.exists():
                return  # nothing to keep and nothing kept: no file to make
            self.file.rewrite(self._live_lines)
        except OSError as exc:
            self._cannot_save(exc)

    def close(self, timeout: float = 5.0) -> None:
        """Write what waits for the writer thread and end it (another starts if more comes)."""
        if self._writer is not None:
            self._writer.close(timeout)

    def _send(self, data: dict[str, Any], sync: bool, strict: bool = False) -> None:
        if self.file is None:
            return
        if self._writer is not None and not strict:
            self._writer.put(json_line(data))
        else:
            self._write([json_line(data)], sync, strict)

    def _write(self, lines: list[bytes], sync: bool = True, strict: bool = False) -> None:
        assert self.file is not None
        try:
            with self._lock:
                compact = self.file.lines + len(lines) > 2 * len(self._live) + COMPACT_AFTER
            if compact:
                self.file.rewrite(self._live_lines)  # holds what `lines` say
            else:
                self.file.append(lines, sync=sync)
        except OSError as exc:
            self._cannot_save(exc)
            if strict:
                raise

    def _live_lines(self) -> list[bytes]:
        with self._lock:
            return [json_line(self.kind.line(key, entry)) for key, entry in self._live.items()]

    def _cannot_save(self, exc: OSError) -> None:
        with self._lock:
            warned, self._warned = self._warned, True
        if not warned:
            folder = self.file.path.parent if self.file is not None else None
            self._log.warning(self.kind.unsaved, folder, exc.strerror)


def _key(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a journal's keys are strings")
    return value


class _Writer:
    """A thread writing a journal's lines in batches: whoever journals a change never waits for the disk."""

    def __init__(self, write: Callable[[list[bytes]], None], name: str) -> None:
        self._write = write
        self._name = name
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: the end (`close`)
        self._thread: threading.Thread | None = None

    def put(self, line: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(line)

    def close(self, timeout: float) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = [item for item in batch if item is not None]
            if lines:
                self._write(lines)
            if None in batch:
                return
