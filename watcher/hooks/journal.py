"""Hook runs not finished yet, kept in the state folder so that they survive a restart or kill -9.

An append-only journal (`hook-runs.jsonl`, one JSON line per change: `watcher.state.journal`): a run
is added before `HookRunner.submit` returns (an upload's or failure's before its record is renamed into
place, with the `at` of `watcher.hooks.intent`), its failed attempts are counted, and it is marked done
once it succeeded or was given up. An add, a failure or a done is fsynced before the call returns
(threads appending at once share one fsync); a commit (the run's final event, once its record is
durable) is not waited for: if it is lost, the next start finds the record where `at` says. A torn last line (a crash mid-append) is skipped when the journal is read; the journal
is rewritten with just its live runs at start and whenever it holds many more lines than live runs.

What is lost when the journal cannot be written is at most a hook run (the uploads and sidecars do not
depend on it): the runs are then kept in memory, and a warning says so once.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.state.journal import JournalFile, json_line

JOURNAL_FILE = "hook-runs.jsonl"
MAX_LINE_BYTES = 1 << 20  # far above a run's line (a sidecar of at most 64 KiB and its paths)
COMPACT_AFTER = 1000  # lines beyond twice the live runs before the journal is rewritten


@dataclass
class JournalEntry:
    run_id: str
    event: dict[str, Any]  # `HookEvent.to_json()`: the journal does not look inside
    failures: int = 0  # failed attempts so far, so that a restart does not grant 5 more
    at: dict[str, Any] | None = None  # `RecordPlace.to_json()` while the record may not be written yet


def _add_line(entry: JournalEntry) -> bytes:
    data = {"add": entry.run_id, "event": entry.event, "failures": entry.failures}
    if entry.at is not None:
        data["at"] = entry.at
    return json_line(data)


class HookJournal:
    def __init__(self, state_dir: Path | None, log: logging.Logger) -> None:
        self._dir = state_dir
        self._log = log
        self._file = JournalFile(state_dir / JOURNAL_FILE, MAX_LINE_BYTES) if state_dir is not None else None
        self._live: dict[str, JournalEntry] = {}
        # Appends, compaction and `_live` change together: a rewrite must not drop a line appended
        # meanwhile.
        self._lock = threading.Lock()
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
        if path is None or self._file is None:
            return []
        found: dict[str, JournalEntry] = {}
        try:
            for raw in self._file.raw_lines():
                _replay(raw, found)
        except OSError as exc:
            self._log.warning("cannot read %s (%s): hook runs left by an earlier run are lost",
                              path, exc.strerror)  # fmt: skip
        with self._lock:
            new = [entry for run_id, entry in found.items() if run_id not in self._live]
            self._live.update({entry.run_id: entry for entry in new})
            self._rewrite_locked()
        return new

    # Appends run outside `_lock`, so that workers appending at once share one fsync. A rewrite
    # (under `_lock`) writes `_live` as it is then, which already holds what a waiting append carries.

    def add(self, entry: JournalEntry) -> None:
        """A new run, on disk when this returns."""
        with self._lock:
            self._live[entry.run_id] = entry
        self._append(_add_line(entry))

    def commit(self, run_id: str, event: dict[str, Any]) -> JournalEntry | None:
        """The run's final event (its record is durable); the entry, or None when it is not live."""
        with self._lock:
            entry = self._live.get(run_id)
            if entry is None:
                return None
            entry.event, entry.at = event, None
        self._append(_add_line(entry), sync=False)
        return entry

    def failed(self, entry: JournalEntry) -> None:
        with self._lock:
            if entry.run_id not in self._live:
                return
        self._append(json_line({"failed": entry.run_id, "failures": entry.failures}))

    def finish(self, run_id: str) -> None:
        with self._lock:
            if self._live.pop(run_id, None) is None:
                return
            if self._file is not None and self._file.lines > 2 * len(self._live) + COMPACT_AFTER:
                self._rewrite_locked()
                return
        self._append(json_line({"done": run_id}))

    def close(self) -> None:
        """Nothing to release: each append opens and closes the file."""

    def _append(self, line: bytes, *, sync: bool = True) -> None:
        if self._file is None:
            return
        try:
            self._file.append([line], sync=sync)
        except OSError as exc:
            with self._lock:
                self._cannot_save(exc)

    def _rewrite_locked(self) -> None:
        if self._file is None:
            return
        try:
            # Nothing pending and no file: nothing to write (a state folder we cannot even look into
            # counts as that too; the warning about it came from load).
            if not self._live and not self._file.path.exists():
                return
            self._file.rewrite(lambda: [_add_line(entry) for entry in self._live.values()])
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
