"""`minimax-watcher status`: what each folder holds, read from the files themselves (no agent needed).

Names and error texts come from users and the API: the text view escapes control characters and bounds
their length, and neither view fails on a name that is not UTF-8. See docs/architecture.md, 'Telling'.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from watcher.config.load import Config
from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder, is_inside
from watcher.core.media import name_problem
from watcher.core.messages import FileState
from watcher.core.video import FolderVideos, VideoSummary
from watcher.core.wording import count, size
from watcher.disk.moved_failures import moved_failures
from watcher.redact import BIDI_CONTROL
from watcher.report.live_status import read_live_status
from watcher.scan.inventory import walk_candidates
from watcher.state.index_reader import IndexReader
from watcher.state.videos import summarize

log = logging.getLogger("watcher")

MAX_ERROR = 1000  # characters of an error text shown (an error record may hold more)
MAX_SHOWN = 300  # ... and on a terminal line
MAX_IN_PROGRESS = 20  # videos shown with their percent, per folder
VIDEO_STATES = ("queued", "generating", "done", "failed", "unknown")


def folder_report(
    config: Config, index: IndexReader | None = None, owner: ApiOwner | None = None
) -> dict[str, Any]:
    """Each folder's counts and failures. With an `index` (an agent's, read-only, made for `owner`), a
    done file it vouches for is counted without reading its sidecar, as the agent's start does. A
    sidecar of another API user or base URL than `owner`'s is pending, as the agent judges it."""
    folders = []
    for folder in config.folders:
        counts = {state: 0 for state in FileState}
        failures = []

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
                failures.append(
                    {"file": os.path.relpath(found.path, folder.path), "error": error[:MAX_ERROR]}
                )
        failures += moved_failures_of(folder)
        folders.append(
            {
                "path": folder.path,
                "account": folder.account,
                "uploaded": counts[FileState.DONE],
                "pending": counts[FileState.PENDING],
                "failed": counts[FileState.FAILED] + sum(1 for f in failures if f.get("moved")),
                "failures": sorted(failures, key=lambda f: f["file"]),
            }
        )
    return {"folders": folders}


def moved_failures_of(folder: Folder) -> list[dict[str, Any]]:
    """The failures moved to `folder`'s failed_dir, as `failures` entries: still failed, with the reason
    from the error record that moved with each ("moved": true; "file" below the folder, as the others)."""
    found = []
    for path, record in moved_failures(folder, read=True):
        shown = os.path.relpath(path, folder.path) if is_inside(path, folder.path) else path
        error = str((record or {}).get("error", "its error record cannot be read"))
        found.append({"file": shown, "error": error[:MAX_ERROR], "moved": True})
    return found


ATTENTION_EXIT = 1  # `status` when something needs someone, as `systemctl is-failed` says "failed"


def needs_attention(report: dict[str, Any]) -> list[str]:
    """What in `report` (text or --json alike) needs someone, said briefly; `status` exits
    ATTENTION_EXIT when there is any, else 0: a failed file, an account paused or held (uploads or
    videos), a failed or unknown video, a folder whose lock name is taken (nothing uploads from it)."""
    found = []
    failed = sum(int(folder.get("failed", 0)) for folder in report.get("folders", []))
    if failed:
        found.append(count(failed, "failed file"))
    videos = [folder["videos"] for folder in report.get("folders", []) if "videos" in folder]
    for state in ("failed", "unknown"):
        if n := sum(int(v.get(state, 0)) for v in videos):
            found.append(f"{count(n, 'video')} {state}")
    agent = report.get("agent")
    agent = agent if isinstance(agent, dict) else {}
    for account in agent.get("accounts", []):
        if account.get("state") != "ok":
            found.append(f"account {account.get('account')} {account.get('state')}")
    for account in report.get("video_accounts", []):
        if account.get("paused_until") is not None:
            found.append(f"videos of account {account.get('account') or 'default'} paused")
    if blocked := len(agent.get("lock_blocked", [])):
        found.append(f"{count(blocked, 'folder')} not held (lock name taken)")
    return found


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


def add_videos(report: dict[str, Any], summary: VideoSummary, folders: Sequence[Folder]) -> None:
    """Attach each `generate` folder's videos, and its accounts' day and slots (`summary`: the agent's
    journal, `watcher.state.videos.summarize`); a folder without `generate` is left as it was."""
    by_path = {f.path: f for f in folders if f.generate is not None}
    for entry in report["folders"]:
        if entry["path"] not in by_path:
            continue
        videos = summary.folders.get(entry["path"], FolderVideos())
        entry["videos"] = {
            **{state: getattr(videos, state) for state in VIDEO_STATES},
            "in_progress": [{"file": file, "percent": percent} for file, percent in videos.in_progress],
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


def add_videos_from_state(
    report: dict[str, Any], folders: Sequence[Folder], state_dirs: Sequence[Path]
) -> None:
    """`add_videos` with the summary of the journal in the state folder an agent uses (read-only)."""
    state_dir, _agent = choose_state_dir(state_dirs)
    try:
        summary = summarize(state_dir, folders, utc_day())
    except OSError as exc:
        log.warning("cannot read the videos' journal in %s (%s): videos not shown", state_dir, exc.strerror)
        return
    add_videos(report, summary, folders)


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _render_videos(videos: dict[str, Any]) -> list[str]:
    lines = ["  videos: " + ", ".join(f"{state} {videos[state]}" for state in VIDEO_STATES)]
    shown = videos["in_progress"][:MAX_IN_PROGRESS]
    for video in shown:
        lines.append(f"    generating {printable(str(video['file']))}: {int(video['percent'])}%")
    if len(videos["in_progress"]) > len(shown):
        lines.append(f"    ... and {len(videos['in_progress']) - len(shown)} more generating")
    if videos["failed"] or videos["unknown"]:
        lines.append("    to take the failed and unknown ones again: minimax-watcher retry --failed")
    return lines


def _render_video_account(account: dict[str, Any]) -> str:
    who = account["account"] or "the token's only account"
    line = (
        f"videos, account {printable(str(who))}: {account['today']} of {account['cap']} today (UTC), "
        f"{account['in_flight']} of {account['max_jobs']} in flight"
    )
    if account["today"] >= account["cap"]:
        line += "; the day's cap is reached: no new videos until 00:00 UTC"
    if account["paused_until"] is not None:
        until = str(account["paused_until"]).replace("T", " ").removesuffix("Z")
        reason = printable(str(account["pause_reason"] or "no reason given"), MAX_SHOWN)
        line += f"; paused until {printable(until)} UTC: {reason}"
    return line


def render_text(report: dict[str, Any]) -> str:
    lines = []
    agent = report.get("agent")
    for folder in report["folders"]:
        account = folder["account"] or "the token's only account"
        lines.append(
            f"{printable(folder['path'])}  (account {account})\n"
            f"  uploaded {folder['uploaded']}, pending {folder['pending']}, failed {folder['failed']}"
        )
        if isinstance(agent, dict) and not folder.get("watched", True):
            lines.append("  not watched: the running agent's config does not list this folder")
        for failure in folder["failures"]:
            lines.append(f"  failed: {printable(failure['file'])}: {printable(failure['error'], MAX_SHOWN)}")
        if "videos" in folder:
            lines += _render_videos(folder["videos"])
    lines += [_render_video_account(account) for account in report.get("video_accounts", [])]
    if report.get("note"):
        lines.append(f"note: {printable(str(report['note']))}")
    other = report.get("other_agent")
    if isinstance(agent, dict):
        lines += _render_agent(agent)
    elif isinstance(other, dict):
        lines.append(
            f"agent: not running for these folders; the agent on this state folder (pid {other.get('pid')}) "
            "runs another config (counts above are read from the disk)"
        )
    else:
        lines.append("agent: not running on this state folder (counts above are read from the disk)")
    return "\n".join(lines)


def _render_agent(agent: dict[str, Any]) -> list[str]:
    lines = [f"agent: running, pid {agent.get('pid')}, since {printable(str(agent.get('since')))}"]
    for account in agent.get("accounts", []):
        line = f"  account {printable(str(account.get('account')))}: {printable(str(account.get('state')))}"
        if account.get("state") != "ok":
            line += f" ({printable(str(account.get('reason')), MAX_SHOWN)}; next probe {account.get('next_probe')})"
        lines.append(line)
    for upload in agent.get("uploading", []):
        sent, total = int(upload.get("sent", 0)), int(upload.get("size", 0))
        lines.append(f"  uploading {printable(str(upload.get('file')))}: {size(sent)} of {size(total)}")
    for entry in agent.get("standing_by", []):
        if isinstance(entry, dict):  # an agent before identities gave the path alone
            who = printable(str(entry.get("held_by")), MAX_SHOWN)
            lines.append(f"  {printable(str(entry.get('folder')))}: standing by (held by {who})")
        else:
            lines.append(f"  {printable(str(entry))}: standing by (held by another agent)")
    for entry in agent.get("lock_blocked", []):
        problem = printable(str(entry.get("problem")), MAX_SHOWN)
        lines.append(f"  {printable(str(entry.get('folder')))}: not held, nothing uploads: {problem}")
    return lines


def render_json(report: dict[str, Any]) -> bytes:
    """UTF-8 JSON; names that are not valid UTF-8 come out as \\u escapes instead of failing."""
    try:
        return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(report, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def printable(text: str, limit: int | None = None) -> str:
    """`text` safe for a terminal: control characters and undecodable bytes as \\xNN, bidi and line
    controls as \\uNNNN (a name must not reorder what the terminal shows), cut at `limit`."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not valid UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029, 0x85) or BIDI_CONTROL.match(char):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
