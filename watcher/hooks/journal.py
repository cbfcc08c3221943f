"""Hook runs not finished yet, journalled in the state folder (`hook-runs.jsonl`) so that they survive a
restart or a kill -9: a `Journal` of runs by id (see docs/architecture.md, "Hooks").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.state.journal import Journal, JournalKind


@dataclass
class PendingRun:
    """A hook run not finished yet, as the journal keeps it."""

    run_id: str
    event: dict[str, Any]  # `HookEvent.to_json()`: the journal does not look inside
    failures: int = 0  # failed attempts so far, so that a restart does not grant 5 more
    at: dict[str, Any] | None = None  # `RecordPlace.to_json()` while the record may not be written yet


def _line(run_id: str, entry: PendingRun) -> dict[str, Any]:
    data = {"add": run_id, "event": entry.event, "failures": entry.failures}
    if entry.at is not None:
        data["at"] = entry.at
    return data


def _entry(line: dict[str, Any], earlier: PendingRun | None) -> PendingRun:
    if not isinstance(line.get("event"), dict):
        raise ValueError("not a hook run")
    at = line.get("at") if isinstance(line.get("at"), dict) else None
    failures = int(line.get("failures", 0))
    if earlier is not None:  # a commit: the same run with its final event
        failures = max(failures, earlier.failures)
    return PendingRun(str(line["add"]), line["event"], failures, at)


def _failed(line: dict[str, Any], entry: PendingRun) -> PendingRun:
    entry.failures = max(entry.failures, int(line["failures"]))
    return entry


RUNS = JournalKind(
    file="hook-runs.jsonl",
    key="add",
    end="done",
    line=_line,
    entry=_entry,
    notes={"failed": _failed},
    unreadable="cannot read %s (%s): hook runs left by an earlier run are lost",
    unsaved="cannot save hook runs in %s (%s): pending hook runs are kept in memory only, and a restart "
    "loses them",
    max_line_bytes=1 << 20,  # far above a run's line (a sidecar of at most 64 KiB and its paths)
)


class HookJournal:
    """The runs of a `HookRunner`: each add, failure and end fsynced before the call returns; a commit
    (the run's final event, once its record is durable) not waited for: if it is lost, the next start
    finds the record where `at` says."""

    def __init__(self, state_dir: Path | None, log: logging.Logger) -> None:
        self._journal = Journal(state_dir, RUNS, log)

    def __len__(self) -> int:
        return len(self._journal)

    def load(self) -> list[PendingRun]:
        """The runs an earlier process left unfinished, oldest first, and not known here yet; the journal
        is rewritten to hold only the live runs."""
        new = self._journal.adopt()
        self._journal.compact()
        return list(new.values())

    def add(self, entry: PendingRun) -> None:
        """A new run, on disk when this returns."""
        self._journal.add(entry.run_id, entry)

    def commit(self, run_id: str, event: dict[str, Any]) -> PendingRun | None:
        """The run's final event (its record is durable); the entry, or None when it is not live."""

        def committed(entry: PendingRun) -> PendingRun:
            entry.event, entry.at = event, None
            return entry

        return self._journal.update(run_id, committed, sync=False)

    def failed(self, entry: PendingRun) -> None:
        self._journal.note("failed", entry.run_id, {"failures": entry.failures})

    def finish(self, run_id: str) -> None:
        self._journal.remove(run_id)

    def close(self) -> None:
        self._journal.close()
