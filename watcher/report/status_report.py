"""What `minimax-watcher status --json` prints and the status page's `/api/status` serves: one builder,
read from the files, the index, the agent's live status and the videos' journal (SPEC §4, §9).
See docs/architecture.md, 'Telling'."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from watcher.config.load import Config
from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder, is_inside
from watcher.core.generation import Entry
from watcher.core.media import SIDECAR_SUFFIX, kind_of_name, name_problem
from watcher.core.messages import FileState
from watcher.core.video import FolderVideos, VideoSummary
from watcher.disk.files import OutsideRootError, components_below
from watcher.disk.moved_failures import moved_failures
from watcher.disk.records import read_record
from watcher.report.live_status import read_live_status, read_recent
from watcher.scan.inventory import walk_candidates
from watcher.state.index import INDEX_NAME
from watcher.state.index_reader import IndexReader
from watcher.state.videos import summarize

log = logging.getLogger("watcher")

MAX_ERROR = 1000  # characters of an error text shown (an error record may hold more)
VIDEO_STATES = ("queued", "generating", "done", "failed", "unknown")
MAX_RECENT_VIDEOS = 12  # per folder


def build_status(
    config: Config, state_dirs: Sequence[Path], owner: ApiOwner, *, max_failures: int | None = None
) -> dict[str, Any]:
    """The report for `config`'s folders, with the agent running on one of `state_dirs`, if any, and
    its latest uploads and videos. Sidecars count as done for `owner` only. `max_failures`: failures
    listed per folder at most (the first by name; `failures_omitted` counts the others)."""
    # Without the token's user the index cannot be told to be this user's: every sidecar is read.
    opened = (IndexReader.open(d / INDEX_NAME, owner.key) for d in state_dirs if owner.user is not None)
    index = next(filter(None, opened), None)
    try:
        report = folder_report(config, index, owner, max_failures=max_failures)
    finally:
        if index is not None:
            index.close()
    state_dir, agent = choose_state_dir(state_dirs)
    add_agent(report, agent)
    if any(f.generate is not None for f in config.folders):
        add_videos_from_state(report, config.folders, state_dir)
    report["recent"] = recent_uploads(config.folders, read_recent(state_dir), owner)
    return report


def file_link(route: str, folder: int, rel: str) -> str:
    """`/thumbnail?folder=N&file=REL` (or `/video`): REL's bytes percent-encoded, a name that is not
    UTF-8 included (`watcher.page` decodes it back with os.fsdecode)."""
    return f"/{route}?folder={folder}&file={quote(os.fsencode(rel), safe='')}"


def recent_uploads(
    folders: Sequence[Folder], uploads: Iterable[dict[str, Any]], owner: ApiOwner
) -> list[dict[str, Any]]:
    """The latest uploads in `folders` whose sidecar is still there with the same fileID, newest first."""
    index = {folder.path: i for i, folder in enumerate(folders)}
    shown = []
    for upload in uploads:
        path, where = upload.get("path"), index.get(upload.get("folder"))  # type: ignore[arg-type]
        if where is None or not isinstance(path, str):
            continue
        folder = folders[where]
        root = _root_of(path, (folder.path, folder.done_dir))
        sidecar = read_record(path + SIDECAR_SUFFIX, root=root) if root is not None else None
        if sidecar is None or sidecar.get("fileID") != upload.get("fileID") or not owner.owns(sidecar):
            continue
        rel = os.path.relpath(path, folder.path)
        # A thumbnail of an image inside the folder (the page serves nothing outside it; audio has none).
        pictured = root == folder.path and kind_of_name(os.path.basename(path)) == "image"
        shown.append(
            {
                "folder": folder.path,
                "file": rel,
                "fileID": sidecar["fileID"],
                "uploaded": upload.get("uploaded"),
                "thumbnail": file_link("thumbnail", where, rel) if pictured else None,
            }
        )
    return shown


def _root_of(path: str, roots: Iterable[str | None]) -> str | None:
    for root in roots:
        if root is None:
            continue
        try:
            components_below(root, path)
        except OutsideRootError:
            continue
        return root
    return None


def recent_videos(folder: Folder, where: int, done: Iterable[Entry]) -> list[dict[str, Any]]:
    """The folder's latest done videos, newest first; `where` is its index in the config's folders."""
    mine = sorted(
        (e for e in done if e.folder == folder.path and e.video), key=lambda e: -(e.finished_at or 0.0)
    )
    return [
        {
            "file": os.path.relpath(entry.image, folder.path),
            "video": file_link("video", where, entry.video or ""),
            "videoId": entry.video_id,
        }
        for entry in mine[:MAX_RECENT_VIDEOS]
    ]


def folder_report(
    config: Config,
    index: IndexReader | None = None,
    owner: ApiOwner | None = None,
    *,
    max_failures: int | None = None,
) -> dict[str, Any]:
    """Each folder's counts and failures. With an `index` (an agent's, read-only, made for `owner`), a
    done file it vouches for is counted without reading its sidecar, as the agent's start does. A
    sidecar of another API user or base URL than `owner`'s is pending, as the agent judges it."""
    folders = []
    for folder in config.folders:
        counts = {state: 0 for state in FileState}
        failures = _Failures(max_failures)

        def vouched(_directory: str, count: int, counts: dict[FileState, int] = counts) -> None:
            counts[FileState.DONE] += count

        walk = walk_candidates(
            folder.path,
            folder.recursive,
            folder.account,
            admits=folder.admits,
            known_in=index.known_in if index is not None else None,
            on_vouched=vouched,
            owner=owner,
        )
        for found in walk:
            problem = name_problem(os.path.basename(found.path))
            state = FileState.FAILED if problem is not None else found.state
            counts[state] += 1
            if problem is not None or (state is FileState.FAILED and found.record is not None):
                error = problem if problem is not None else str((found.record or {}).get("error", ""))
                failures.add({"file": os.path.relpath(found.path, folder.path), "error": error[:MAX_ERROR]})
        for moved in _moved_failure_entries(folder):
            failures.add(moved)
        listed = failures.listed()
        entry: dict[str, Any] = {
            "path": folder.path,
            "account": folder.account,
            "uploaded": counts[FileState.DONE],
            "pending": counts[FileState.PENDING],
            "failed": counts[FileState.FAILED] + failures.moved,
            "failures": listed,
        }
        if failures.total > len(listed):
            entry["failures_omitted"] = failures.total - len(listed)
        folders.append(entry)
    return {"folders": folders}


class _Failures:
    """A folder's failures sorted by file; with `keep`, the first `keep` of them only, so that a
    dropper's million failed files cost no memory here (the page's report is built every 2 s)."""

    def __init__(self, keep: int | None) -> None:
        self._keep, self._items = keep, list[dict[str, Any]]()
        self.total = self.moved = 0

    def add(self, entry: dict[str, Any]) -> None:
        self.total += 1
        self.moved += bool(entry.get("moved"))
        self._items.append(entry)
        if self._keep is not None and len(self._items) > 2 * self._keep + 64:
            self._items = self.listed()

    def listed(self) -> list[dict[str, Any]]:
        ordered = sorted(self._items, key=lambda f: f["file"])
        return ordered if self._keep is None else ordered[: self._keep]


def _moved_failure_entries(folder: Folder) -> Iterator[dict[str, Any]]:
    """The failures moved to `folder`'s failed_dir, as `failures` entries: still failed, with the reason
    from the error record that moved with each ("moved": true; "file" below the folder, as the others)."""
    for path, record in moved_failures(folder, read=True):
        shown = os.path.relpath(path, folder.path) if is_inside(path, folder.path) else path
        error = str((record or {}).get("error", "its error record cannot be read"))
        yield {"file": shown, "error": error[:MAX_ERROR], "moved": True}


def add_agent(report: dict[str, Any], agent: dict[str, Any] | None) -> None:
    """Attach a running agent's live status to `report`, and mark each folder watched by it or not: an
    agent on the same state folder may run another config, and its being up says nothing of these folders."""
    watched = set(agent.get("folders", [])) if agent is not None else set()
    for folder in report["folders"]:
        folder["watched"] = folder["path"] in watched
    if agent is not None and watched & {folder["path"] for folder in report["folders"]}:
        report["agent"] = agent
    elif agent is not None:
        report["other_agent"] = {"pid": agent.get("pid"), "folders": sorted(watched)}


def choose_state_dir(state_dirs: Sequence[Path]) -> tuple[Path, dict[str, Any] | None]:
    """The state folder of an agent running now (and its live status), else the first that exists
    (an agent ran there), else the first."""
    for state_dir in state_dirs:
        agent = read_live_status([state_dir])
        if agent is not None:
            return state_dir, agent
    return next((d for d in state_dirs if d.is_dir()), state_dirs[0]), None


def utc_day(wall: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if wall is None else wall))


def add_videos(
    report: dict[str, Any], summary: VideoSummary, folders: Sequence[Folder], done: Sequence[Entry] = ()
) -> None:
    """Attach each `generate` folder's videos, and its accounts' day and slots (`summary`: the agent's
    journal, `watcher.state.videos.summarize`, and `done` its done videos); a folder without `generate`
    is left as it was."""
    by_path = {f.path: f for f in folders if f.generate is not None}
    where = {f.path: i for i, f in enumerate(folders)}
    for entry in report["folders"]:
        if entry["path"] not in by_path:
            continue
        videos = summary.folders.get(entry["path"], FolderVideos())
        entry["videos"] = {
            **{state: getattr(videos, state) for state in VIDEO_STATES},
            "in_progress": [{"file": file, "percent": percent} for file, percent in videos.in_progress],
            "recent": recent_videos(by_path[entry["path"]], where[entry["path"]], done),
        }
    accounts = []
    for key in _video_account_keys(by_path.values(), summary):
        account = summary.accounts.get(key)
        if account is None:
            continue
        until = account.paused_until
        accounts.append(
            {
                "account": key or None,
                "today": account.today,
                "cap": account.cap,
                "in_flight": account.in_flight,
                "max_jobs": account.max_jobs,
                "paused_until": _iso(until) if until is not None else None,
                "pause_reason": account.pause_reason if until is not None else None,
            }
        )
    if by_path:
        report["video_accounts"] = accounts


def _video_account_keys(folders: Iterable[Folder], summary: VideoSummary) -> list[str]:
    """The accounts to show: each folder's own, and for folders without `account` (whose images go out
    under their sidecar's account) the other accounts the journal knows, else the empty key."""
    named = {f.account_key for f in folders if f.account_key}
    keys = set(named)
    if any(not f.account_key for f in folders):
        offered = {a for a in summary.accounts if a and a not in named}
        keys |= offered or {""}
    return sorted(keys)


def add_videos_from_state(report: dict[str, Any], folders: Sequence[Folder], state_dir: Path) -> None:
    """`add_videos` with the summary of the journal in the state folder an agent uses (read-only)."""
    done: list[Entry] = []
    try:
        summary = summarize(state_dir, folders, utc_day(), done)
    except OSError as exc:
        log.warning("cannot read the videos' journal in %s (%s): videos not shown", state_dir, exc.strerror)
        return
    add_videos(report, summary, folders, done)


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
