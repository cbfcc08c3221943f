"""`<image>.video.json`, the video record beside an image (SPEC §8): for people to read; the journal in
the state folder decides what happens (THREAT_MODEL rule 2)."""

from __future__ import annotations

import json
from typing import Any

from watcher.core.video import VIDEO_RECORD_SUFFIX, VideoRequest, VideoState
from watcher.disk.records import write_json_atomically
from watcher.redact import redact

MODERATED = "moderated"  # the record's status of a video refused by moderation (a FAILED one)


def build_video_record(
    request: VideoRequest | None,
    *,
    state: VideoState,
    params: dict[str, Any],
    video_id: str | None,
    status_label: str | None,
    submitted_at: str | None,
    finished_at: str | None,
    video: str | None,
    size: int | None,
    sha256: str | None,
    error: str | None,
    model: str,
    prompt: str | None,
    account: str,
    file_id: str,
    moderated: bool = False,
) -> dict[str, Any]:
    """SPEC §8's fields, every one present (null when unknown), every text redacted.

    With a `request` (the create that was sent), its account, fileID, model, prompt and params are
    recorded: what was asked for; without one (the video failed before a request was made), the
    arguments. `status` is `state`'s value, or "moderated" for a FAILED video with `moderated`.
    """
    if request is not None:
        account, file_id, model = request.account, request.file_id, request.model
        prompt = request.prompt or None
        params = json.loads(request.params_json)
    status = MODERATED if moderated and state is VideoState.FAILED else state.value
    return {
        "videoId": _text(video_id),
        "account": _text(account),
        "fileID": _text(file_id),
        "model": _text(model),
        "prompt": _text(prompt),
        "params": _redacted(params),
        "status": status,
        "statusLabel": _text(status_label),
        "submittedAt": submitted_at,
        "finishedAt": finished_at,
        "video": _text(video),
        "size": size,
        "sha256": sha256,
        "error": _text(error),
    }


def write_video_record(root: str, image: str, record: dict[str, Any]) -> None:
    """Write `<image>.video.json` atomically, its folder reached from `root` without following a
    symlink; a symlink planted at its name is replaced, never written through. Raises OSError."""
    write_json_atomically(image + VIDEO_RECORD_SUFFIX, record, root)


def _text(value: str | None) -> str | None:
    return None if value is None else redact(value)


def _redacted(value: Any) -> Any:
    """`value` (JSON: dicts, lists, scalars) with every string in it, keys too, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value
