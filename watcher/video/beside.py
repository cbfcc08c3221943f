"""What lies beside an image for its video: the end frame's sidecar, a done image's sidecar (for
`retry`), the video record. Each read no-follow from the watched folder; every byte is input."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from watcher.core.folders import Folder, is_inside
from watcher.core.generation import Entry
from watcher.core.media import error_record_path, sidecar_path
from watcher.core.signature import signature_of
from watcher.core.video import VideoRequest, VideoSettings, VideoState
from watcher.disk.files import lstat_beneath
from watcher.disk.records import is_valid_sidecar, read_record, record_matches
from watcher.log_fields import say
from watcher.redact import escape_control
from watcher.video.prompt import end_frame_of, read_prompt
from watcher.video.records import build_video_record, write_video_record

log = logging.getLogger("watcher")


@dataclass(frozen=True)
class EndFrame:
    """`file_id` when its sidecar is there and current; `error` when its upload failed for good;
    neither while it waits for its upload."""

    file_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Resolved:
    """What an entry's create would ask for now (`request`), or why not yet (`wait` seconds, with
    `needs_prompt` while a required prompt file is absent), or why never (`error`)."""

    request: VideoRequest | None = None
    wait: float = 0.0
    needs_prompt: bool = False
    error: str | None = None


def resolve_request(
    folder: Folder, settings: VideoSettings, entry: Entry, *, settle: float, now: float
) -> Resolved:
    """The prompt (`<stem>.txt` when there is one, settled and usable, else the folder's) and the end
    frame (its sidecar's fileID, once it has one) of `entry`'s image, as its `VideoRequest`."""
    prompt_file = read_prompt(folder.path, entry.image, settle_seconds=settle, now=now)
    if prompt_file.error is not None:
        return Resolved(error=f"the prompt file cannot be used: {prompt_file.error}")
    if prompt_file.waiting:
        return Resolved(wait=max(settle, 1.0))
    if prompt_file.text is None and settings.require_prompt_file:
        return Resolved(wait=5.0, needs_prompt=True)
    end_frame_id: str | None = None
    end_path = end_frame_of(folder.path, entry.image)
    if end_path is not None:
        found = end_frame(folder.path, end_path)
        if found.error is not None:
            return Resolved(error=found.error)
        if found.file_id is None:
            return Resolved(wait=max(settle, 1.0))  # uploaded soon: no sidecar yet
        end_frame_id = found.file_id
    request = VideoRequest(
        folder=folder.path,
        image=entry.image[len(folder.path.rstrip("/")) + 1 :],
        account=entry.account,
        file_id=entry.file_id,
        sha256=entry.sha256,
        model=settings.model,
        prompt=prompt_file.text if prompt_file.text is not None else (settings.prompt or ""),
        params_json=settings.params_json,
        end_frame_file_id=end_frame_id,
    )
    return Resolved(request=request)


def end_frame(root: str, path: str) -> EndFrame:
    error = read_record(error_record_path(path), root=root)
    if error is not None:
        why = error.get("error")
        said = f": {escape_control(why[:300])}" if isinstance(why, str) else ""  # forgeable: shown, escaped
        return EndFrame(error=f"the end frame {path} could not be uploaded{said}")
    record = current_sidecar(root, path)
    return EndFrame(file_id=str(record["fileID"])) if record is not None else EndFrame()


def current_sidecar(root: str, path: str) -> dict[str, Any] | None:
    """`path`'s sidecar when it is valid and describes the file's current bytes (a fresh stat), else None."""
    record = read_record(sidecar_path(path), root=root)
    if not is_valid_sidecar(record):
        return None
    try:
        signature = signature_of(lstat_beneath(root, path))
    except OSError:
        return None
    return record if record is not None and record_matches(record, signature) else None


def destination(folder: Folder, settings: VideoSettings, image: str) -> tuple[str, str]:
    """(root, dest) for `download_video`: `output_dir/<path below the folder>/<stem>.mp4`, reached from the
    watched folder when `output_dir` is inside it (no-follow all the way), else from `output_dir`."""
    below, name = os.path.split(image[len(folder.path.rstrip("/")) + 1 :])
    dest = os.path.join(settings.output_dir, below, os.path.splitext(name)[0] + ".mp4")
    return (folder.path if is_inside(settings.output_dir, folder.path) else settings.output_dir), dest


def done_image(folders: Iterable[Folder], path: str) -> tuple[Folder, str, str, str, str] | str:
    """What `retry` offers for a done image with no video: (folder, image, fileID, account, sha256) from
    its sidecar, current and of the folder's own account (a sidecar is forgeable); else why not."""
    folder = next((f for f in folders if f.generate is not None and is_inside(path, f.path)), None)
    if folder is None:
        return f"{path}: not in a folder with a generate block; nothing to do"
    record = current_sidecar(folder.path, path)
    if record is None:
        return f"{path}: has no valid sidecar for its current bytes (not uploaded yet?); nothing to do"
    account = record.get("account")
    if not isinstance(account, str) or (folder.account is not None and account != folder.account):
        return f"{path}: its sidecar names another account than its folder's; nothing to do"
    return folder, path, str(record["fileID"]), account, str(record["sha256"])


def _iso(wall: float | None) -> str | None:
    return None if wall is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def write_record(folder: Folder, settings: VideoSettings | None, entry: Entry) -> dict[str, Any]:
    """`<image>.video.json` as the entry stands (for people: the journal decides); the record."""
    request = entry.request
    moderated = entry.result == "moderated"
    record = build_video_record(
        request,
        state=VideoState.FAILED if moderated else entry.state,
        params=settings.params if settings is not None else {},
        video_id=entry.video_id,
        status_label=entry.status_label,
        submitted_at=_iso(entry.submitted_at),
        finished_at=_iso(entry.finished_at),
        video=entry.video,
        size=entry.size,
        sha256=entry.video_sha256,
        error=entry.error,
        model=request.model if request is not None else (settings.model if settings is not None else ""),
        prompt=request.prompt if request is not None else None,
        account=entry.account,
        file_id=entry.file_id,
    )
    if moderated:
        record["status"] = "moderated"
    try:
        write_video_record(folder.path, entry.image, record)
    except OSError as exc:
        say(
            log.warning,
            "%s: cannot write its video record (%s); the agent's journal keeps the video's state",
            entry.image,
            exc.strerror or exc,
            file=entry.image,
            account=entry.account,
            event="failure",
        )
    return record
