"""`minimax-watcher status`: what each folder holds, read from the files themselves (no agent needed).

Names and error texts come from users and the API: the text view escapes control characters and bounds
their length, and neither view fails on a name that is not UTF-8. See docs/architecture.md, 'Telling'.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from watcher.core.wording import count, size
from watcher.log_fields import account_shown
from watcher.redact import BIDI_CONTROL
from watcher.report.metrics import DEFAULT_ACCOUNT
from watcher.report.status_report import VIDEO_STATES

log = logging.getLogger("watcher")

MAX_SHOWN = 300  # ... and on a terminal line
MAX_IN_PROGRESS = 20  # videos shown with their percent, per folder


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
            found.append(f"{shown(account.get('account'))} {printable(str(account.get('state')))}")
    for account in report.get("video_accounts", []):
        if account.get("paused_until") is not None:
            found.append(f"videos of {shown(account.get('account'))} paused")
    if blocked := len(agent.get("lock_blocked", [])):
        found.append(f"{count(blocked, 'folder')} not held (lock name taken)")
    return found


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
    line = (
        f"videos, {shown(account['account'])}: {account['today']} of {account['cap']} today (UTC), "
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
        lines.append(
            f"{printable(folder['path'])}  ({shown(folder['account'])})\n"
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
        line = f"  {shown(account.get('account'))}: {printable(str(account.get('state')))}"
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


def shown(account: object) -> str:
    """An account as the log lines name it (`account=123456`, or the token's only account), whether the
    report says None (a folder's key) or "default" (the agent's key, as in the metrics)."""
    known = None if account in (None, "", DEFAULT_ACCOUNT) else printable(str(account))
    return account_shown(known)


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
