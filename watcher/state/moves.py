"""The moves to done_dir / failed_dir under way (`watcher.disk.mover`), journalled in the state folder
(`moves.jsonl`): a `Journal` of intents by move id.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from watcher.state.journal import Journal, JournalKind

Intent = dict[str, Any]


def _line(move_id: str, intent: Intent) -> Intent:
    return {**intent, "move": move_id}


def _intent(line: Intent, _earlier: Intent | None) -> Intent:
    return line


MOVES = JournalKind(
    file="moves.jsonl",
    key="move",
    end="done",
    line=_line,
    entry=_intent,
    unreadable="cannot read %s (%s): moves to done_dir/failed_dir a stop cut short are not finished; "
    "their files may lack a record in done_dir",
    unsaved="cannot journal moves to done_dir/failed_dir in %s (%s): they go on, but a stop in the middle "
    "of one may leave a stray link in done_dir or a record behind in the drop folder",
    max_line_bytes=1 << 20,  # far above a move's line (a record of at most 64 KiB and its paths)
)


def move_journal(state_dir: Path | None) -> Journal[Intent]:
    return Journal(state_dir, MOVES, logging.getLogger("watcher"))
