"""The moves to done_dir / failed_dir under way, journalled in the state folder (`moves.jsonl`).

A move's intent is added, and fsynced, before its file is linked to a new name (and again for each
further name tried); it is marked done once the move is complete, without an fsync: finishing a move
twice changes nothing. At start, `load` gives what an earlier process left, and `compact` then empties
the journal of it. Appends from several workers at once share one fsync (`watcher.state.journal`).

When the state folder cannot be written, moves go on without the journal (a warning says so once): a
stop in the middle of one may then leave a file's extra link in done_dir, or its record behind in the
drop folder, though never a file without a record that describes it somewhere.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from watcher.state.journal import JournalFile, json_line

log = logging.getLogger("watcher")

MOVES_FILE = "moves.jsonl"
MAX_LINE_BYTES = 1 << 20  # far above a move's line (a record of at most 64 KiB and its paths)
COMPACT_AFTER = 1000  # lines beyond twice the live moves before the journal is rewritten


class MoveJournal:
    def __init__(self, state_dir: Path | None) -> None:
        self._file = JournalFile(state_dir / MOVES_FILE, MAX_LINE_BYTES) if state_dir is not None else None
        self._live: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._warned = False

    def add(self, move_id: str, intent: dict[str, Any]) -> None:
        """Journal a move's intent (a later one of the same id replaces it); durable when this returns."""
        with self._lock:
            self._live[move_id] = intent
        self._append(json_line({**intent, "move": move_id}), sync=True)

    def done(self, move_id: str) -> None:
        with self._lock:
            if self._live.pop(move_id, None) is None:
                return
            compact = self._file is not None and self._file.lines > 2 * len(self._live) + COMPACT_AFTER
        if compact:
            self.compact()
        else:
            self._append(json_line({"done": move_id}), sync=False)

    def load(self) -> dict[str, dict[str, Any]]:
        """The intents an earlier process left not done, by id."""
        found: dict[str, dict[str, Any]] = {}
        if self._file is None:
            return found
        try:
            for line in self._file.read():
                if isinstance(line.get("done"), str):
                    found.pop(line["done"], None)
                elif isinstance(line.get("move"), str):
                    found[line["move"]] = line
        except OSError as exc:
            log.warning("cannot read %s (%s): moves to done_dir/failed_dir a stop cut short are not finished; "
                        "their files may lack a record in done_dir", self._file.path, exc.strerror)  # fmt: skip
        return found

    def compact(self) -> None:
        """Rewrite the journal as just the moves under way now."""
        if self._file is None:
            return

        def live() -> list[bytes]:
            with self._lock:
                return [json_line({**intent, "move": move_id}) for move_id, intent in self._live.items()]

        try:
            if not self._live and not self._file.path.exists():
                return  # nothing to keep and nothing kept: no file to make
            self._file.rewrite(live)
        except OSError as exc:
            self._cannot_save(exc)

    def _append(self, line: bytes, *, sync: bool) -> None:
        if self._file is None:
            return
        try:
            self._file.append([line], sync=sync)
        except OSError as exc:
            self._cannot_save(exc)

    def _cannot_save(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("cannot journal moves to done_dir/failed_dir in %s (%s): they go on, but a stop in "
                        "the middle of one may leave a stray link in done_dir or a record behind in the "
                        "drop folder", self._file.path.parent if self._file else None, exc.strerror)  # fmt: skip
