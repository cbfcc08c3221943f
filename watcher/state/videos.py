"""The videos' journal (`videos.journal` in the state folder): each video's state, the day's creates
per account, pauses; and `summarize`, the same read by `status` in another process."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.core.folders import Folder
from watcher.core.generation import Entry, Planner
from watcher.core.video import VideoRequest, VideoState, VideoSummary
from watcher.state.journal import Journal, JournalKind

log = logging.getLogger("watcher")

LOST_ANSWER = (
    "the agent stopped before videos/create answered: it may have spent credits; check the account at "
    "useapi.net, then run `minimax-watcher retry` to ask again"
)


@dataclass(slots=True)
class DayCount:
    account: str
    day: str
    count: int


@dataclass(slots=True)
class Pause:
    account: str
    until: float  # wall clock
    reason: str


Kept = Entry | DayCount | Pause

_STR = ("folder", "image", "file_id", "account", "sha256")
_OPTIONAL_STR = ("video_id", "status_label", "url", "result", "error", "video", "video_sha256")
_OPTIONAL_FLOAT = ("submitted_at", "finished_at")


def video_key(entry_id: str) -> str:
    """An entry's key is its id (`video.generator.entry_id`, "v:" and a hash): the same string object in
    the planner and the journal, not a second one per video."""
    return entry_id


def count_key(account: str, day: str) -> str:
    return f"d:{day}:{account}"


def pause_key(account: str) -> str:
    return f"p:{account}"


def _line(key: str, kept: Kept) -> dict[str, Any]:
    if isinstance(kept, DayCount):
        return {"id": key, "account": kept.account, "day": kept.day, "n": kept.count}
    if isinstance(kept, Pause):
        return {"id": key, "account": kept.account, "until": kept.until, "reason": kept.reason}
    line: dict[str, Any] = {"id": key, "state": kept.state.value, "percent": kept.percent}
    for name in (*_STR, *_OPTIONAL_STR, *_OPTIONAL_FLOAT, "size", "failures"):
        value = getattr(kept, name)
        if value is not None and value != 0:
            line[name] = value
    if kept.request is not None:
        line["request"] = dataclasses.asdict(kept.request)
    return line


def _kept(line: dict[str, Any], _earlier: Kept | None) -> Kept:
    key = line["id"]
    if not isinstance(key, str):
        raise TypeError("key")
    if key.startswith("d:"):
        return DayCount(_str(line["account"]), _str(line["day"]), _int(line["n"]))
    if key.startswith("p:"):
        return Pause(_str(line["account"]), _float(line["until"]), _str(line["reason"]))
    if not key.startswith("v:"):
        raise ValueError("not ours")
    entry = Entry(
        key,
        folder=_str(line["folder"]),
        image=_str(line["image"]),
        file_id=_str(line["file_id"]),
        account=_str(line["account"]),
        sha256=_str(line["sha256"]),
    )
    entry.state = VideoState(line["state"])
    entry.percent = _int(line.get("percent", 0))
    for name in _OPTIONAL_STR:
        setattr(entry, name, _optional(line.get(name), str))
    for name in _OPTIONAL_FLOAT:
        value = line.get(name)
        setattr(entry, name, None if value is None else _float(value))
    entry.size = _optional(line.get("size"), int)
    entry.failures = _int(line.get("failures", 0))
    request = line.get("request")
    if request is not None:
        if not isinstance(request, dict) or not all(isinstance(v, str | None) for v in request.values()):
            raise TypeError("request")
        entry.request = VideoRequest(**request)
    return entry


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _float(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError("not a number")
    return float(value)


def _optional(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise TypeError("wrong type")


VIDEOS = JournalKind[Kept](
    file="videos.journal",
    key="id",
    end="end",
    line=_line,
    entry=_kept,
    unreadable="cannot read %s (%s): videos under way are not resumed and the day's creates start from 0; "
    "check the videos' records and the account at useapi.net before running minimax-watcher retry",
    unsaved="cannot journal videos in %s (%s): videos go on, but a stop may lose what is under way, and a "
    "create whose answer is lost cannot be told from one never sent",
    max_line_bytes=1 << 16,
)


def video_journal(state_dir: Path | None) -> Journal[Kept]:
    return Journal(state_dir, VIDEOS, log)


@dataclass
class Adopted:
    entries: list[Entry]
    lost: list[Entry]  # found SUBMITTING: now UNKNOWN (journalled), to be reported once


def adopt(journal: Journal[Kept], planner: Planner, wall: float) -> Adopted:
    """What an earlier process left, made live in `journal` and `planner`: a create found without its
    answer becomes UNKNOWN (journalled before anything is sent); other days' counts and ended pauses go."""
    found = journal.adopt()
    today = planner.day()
    entries, lost = [], []
    for key, kept in found.items():
        if isinstance(kept, DayCount):
            if kept.day == today:
                planner.restore_count(kept.account, kept.day, kept.count)
            else:
                journal.remove(key, sync=False)
        elif isinstance(kept, Pause):
            if kept.until > wall:
                planner.restore_pause(kept.account, kept.until, kept.reason)
            else:
                journal.remove(key, sync=False)
        else:
            if kept.state is VideoState.SUBMITTING:
                kept.state, kept.result, kept.error, kept.finished_at = (
                    VideoState.UNKNOWN,
                    "unknown",
                    LOST_ANSWER,
                    wall,
                )
                journal.add(key, kept, sync=False)
                lost.append(kept)
            entries.append(kept)
            planner.add(kept)
    if found:
        journal.compact()  # durable: the lost creates are UNKNOWN before anything else is sent
    return Adopted(entries, lost)


def summarize(
    state_dir: Path, folders: Sequence[Folder], today: str, done: list[Entry] | None = None
) -> VideoSummary:
    """The videos as the journal holds them (read-only: nothing is written or adopted); with `done`, the
    done videos that name their MP4 are appended to it (the same one read of the journal)."""
    planner = Planner(folders, monotonic=time.monotonic, wall=time.time)
    for kept in video_journal(state_dir).read().values():
        if isinstance(kept, DayCount):
            planner.restore_count(kept.account, kept.day, kept.count)
        elif isinstance(kept, Pause):
            planner.restore_pause(kept.account, kept.until, kept.reason)
        else:
            planner.add(kept)
            if done is not None and kept.state is VideoState.DONE and kept.video:
                done.append(kept)
    return planner.summary(today)
