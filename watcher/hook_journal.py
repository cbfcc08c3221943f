"""Hook runs not finished yet, kept in the state folder so that they survive a restart or kill -9.

An append-only journal (`hook-runs.jsonl`, one JSON line per change, as in `watcher.state_dir`): a run
is added before `HookRunner.submit` returns (an upload's or failure's before its record is renamed into
place, with the `at` of `watcher.hook_intent`), its failed attempts are counted, and it is marked done
once it succeeded or was given up. An add, a failure or a done is fsynced before the call returns; the
threads that append meanwhile share one fsync (group commit: a burst of uploads costs about one per
batch of workers, not one per file). A commit (the run's final event, once its record is durable) is
not waited for: if it is lost, the next start finds the record where `at` says. A torn last line (a
crash mid-append) is skipped when the journal is read; the journal is rewritten with just its live
runs at start and whenever it holds many more lines than live runs.

What is lost when the journal cannot be written is at most a hook run (the uploads and sidecars do not
depend on it): the runs are then kept in memory, and a warning says so once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.files import fsync_folder, write_all

JOURNAL_FILE = "hook-runs.jsonl"
MAX_LINE_BYTES = 1 << 20  # far above a run's line (a sidecar of at most 64 KiB and its paths)
COMPACT_AFTER = 1000  # lines beyond twice the live runs before the journal is rewritten


@dataclass
class JournalEntry:
    run_id: str
    event: dict[str, Any]  # `HookEvent.to_json()`: the journal does not look inside
    failures: int = 0  # failed attempts so far, so that a restart does not grant 5 more
    at: dict[str, Any] | None = None  # `RecordPlace.to_json()` while the record may not be written yet


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def _add_line(entry: JournalEntry) -> bytes:
    data = {"add": entry.run_id, "event": entry.event, "failures": entry.failures}
    if entry.at is not None:
        data["at"] = entry.at
    return _line(data)


class HookJournal:
    def __init__(self, state_dir: Path | None, log: logging.Logger) -> None:
        self._dir = state_dir
        self._log = log
        self._live: dict[str, JournalEntry] = {}
        self._lines = 0
        # Appends, compaction and `_live` change together: a rewrite must not drop a line appended
        # meanwhile.
        self._lock = threading.Lock()
        self._synced_cond = threading.Condition(self._lock)
        self._fd: int | None = None  # the journal, open for appending
        self._written = 0  # lines appended by this process...
        self._synced = 0  # ...and how many of them an fsync has covered
        self._syncing = False
        self._warned = False

    @property
    def path(self) -> Path | None:
        return self._dir / JOURNAL_FILE if self._dir is not None else None

    def __len__(self) -> int:
        # Under the lock: a run counts until the journal line that ends it is on disk.
        with self._lock:
            return len(self._live)

    def load(self) -> list[JournalEntry]:
        """The runs an earlier process left unfinished, oldest first, and not known here yet; the journal
        is rewritten to hold only the live runs."""
        path = self.path
        if path is None:
            return []
        found: dict[str, JournalEntry] = {}
        try:
            with path.open("rb") as f:
                for raw in f:
                    _replay(raw, found)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._log.warning("cannot read %s (%s): hook runs left by an earlier run are lost",
                              path, exc.strerror)  # fmt: skip
        with self._lock:
            new = [entry for run_id, entry in found.items() if run_id not in self._live]
            self._live.update({entry.run_id: entry for entry in new})
            self._rewrite_locked()
        return new

    def add(self, entry: JournalEntry) -> None:
        """A new run, on disk when this returns."""
        with self._lock:
            self._live[entry.run_id] = entry
            self._sync_locked(self._append_locked(_add_line(entry)))

    def commit(self, run_id: str, event: dict[str, Any]) -> JournalEntry | None:
        """The run's final event (its record is durable); the entry, or None when it is not live."""
        with self._lock:
            entry = self._live.get(run_id)
            if entry is not None:
                entry.event, entry.at = event, None
                self._append_locked(_add_line(entry))
            return entry

    def failed(self, entry: JournalEntry) -> None:
        with self._lock:
            if entry.run_id in self._live:
                line = _line({"failed": entry.run_id, "failures": entry.failures})
                self._sync_locked(self._append_locked(line))

    def finish(self, run_id: str) -> None:
        with self._lock:
            if self._live.pop(run_id, None) is None:
                return
            if self._lines > 2 * len(self._live) + COMPACT_AFTER:
                self._rewrite_locked()
            else:
                self._sync_locked(self._append_locked(_line({"done": run_id})))

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _append_locked(self, line: bytes) -> int:
        """Write `line` (not yet fsynced); the number to wait for with `_sync_locked`, 0 if unwritten."""
        if self._dir is None:
            return 0
        try:
            if self._fd is None:
                self._dir.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                self._fd = os.open(self._dir / JOURNAL_FILE, flags, 0o600)
            write_all(self._fd, line)
        except OSError as exc:
            self._close_locked()
            self._cannot_save(exc)
            return 0
        self._lines += 1
        self._written += 1
        return self._written

    def _sync_locked(self, upto: int) -> None:
        """Wait until line `upto` is fsynced: one thread fsyncs for every line written so far, the
        others wait for it (or for the next one, if theirs came after it started)."""
        while self._synced < upto:
            if self._syncing:
                self._synced_cond.wait()
                continue
            if self._fd is None:
                return  # the file was closed after a failure (warned) or rewritten (synced)
            try:
                fd = os.dup(self._fd)
            except OSError as exc:
                self._cannot_save(exc)
                return
            self._syncing, target = True, self._written
            error: OSError | None = None
            self._lock.release()
            try:
                os.fsync(fd)
            except OSError as exc:
                error = exc
            finally:
                os.close(fd)
                self._lock.acquire()
                self._syncing = False
                self._synced = max(self._synced, target)
                self._synced_cond.notify_all()
            if error is not None:
                self._cannot_save(error)

    def _close_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rewrite_locked(self) -> None:
        path = self.path
        if path is None or self._dir is None:
            return
        tmp = path.with_name(f".{JOURNAL_FILE}.tmp")
        try:
            # Nothing pending and no file: nothing to write (a state folder we cannot even look into
            # counts as that too; the warning about it came from load).
            if not self._live and not path.exists():
                return
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                write_all(fd, b"".join(_add_line(entry) for entry in self._live.values()))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            fsync_folder(self._dir)
            self._close_locked()  # appends go to the new file from now on
            self._lines = len(self._live)
            self._synced = self._written  # every live run is in the new file, fsynced
            self._synced_cond.notify_all()
        except OSError as exc:
            self._cannot_save(exc)

    def _cannot_save(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            self._log.warning("cannot save hook runs in %s (%s): pending hook runs are kept in memory only, "
                              "and a restart loses them", self._dir, exc.strerror)  # fmt: skip


def _replay(raw: bytes, found: dict[str, JournalEntry]) -> None:
    if len(raw) > MAX_LINE_BYTES:
        return
    try:
        line = json.loads(raw)
        if "done" in line:
            found.pop(str(line["done"]), None)
        elif "failed" in line:
            entry = found.get(str(line["failed"]))
            if entry is not None:
                entry.failures = max(entry.failures, int(line["failures"]))
        elif isinstance(line.get("event"), dict):
            run_id = str(line["add"])
            at = line.get("at") if isinstance(line.get("at"), dict) else None
            failures = int(line.get("failures", 0))
            earlier = found.get(run_id)  # a commit: the same run with its final event
            if earlier is not None:
                failures = max(failures, earlier.failures)
            found[run_id] = JournalEntry(run_id, line["event"], failures, at)
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # a torn last line after a crash, or not ours
