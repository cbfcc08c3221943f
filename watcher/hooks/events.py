"""What one event hands its hook (SPEC §6b): the `MINIMAX_*` variables that apply and a JSON document
for stdin (the sidecar, the error record, or the attention event), as `watcher.hooks.runner` runs it and as
its journal keeps it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from watcher.core.folders import Folder
from watcher.core.media import error_record_path, sidecar_path
from watcher.disk.records import utc_now_iso
from watcher.log_fields import account_shown

EventKind = Literal["upload", "failure", "attention", "video"]
HOOK_OF_EVENT: dict[str, str] = {
    "upload": "on_upload",
    "failure": "on_failure",
    "attention": "on_attention",
    "video": "on_video",
}

# The variables of SPEC §6b. Inherited ones are dropped, so that a hook never sees a stale value that
# does not apply to its event.
EVENT_VARIABLES = (
    "MINIMAX_EVENT",
    "MINIMAX_FILE",
    "MINIMAX_SIDECAR",
    "MINIMAX_ERROR_RECORD",
    "MINIMAX_FILE_ID",
    "MINIMAX_OSS_PATH",
    "MINIMAX_ACCOUNT",
    "MINIMAX_SHA256",
    "MINIMAX_CONTENT_TYPE",
    "MINIMAX_FOLDER",
    "MINIMAX_ERROR",
    "MINIMAX_CODE",
    "MINIMAX_MESSAGE",
    "MINIMAX_VIDEO",
    "MINIMAX_VIDEO_ID",
)
MAX_ENV_VALUE = 8192  # a message or path longer than this is cut: the hook gets the whole on stdin


@dataclass(frozen=True)
class HookEvent:
    """One event for a hook: the variables that apply, the JSON for its stdin, and what it is about."""

    event: EventKind
    env: Mapping[str, str] = field(hash=False)
    stdin: str
    subject: str  # what the log tags it with: the file, or the account or folder of an attention event

    @property
    def hook(self) -> str:
        """The config key of the hook this event runs: on_upload, on_failure or on_attention."""
        return HOOK_OF_EVENT[self.event]

    @classmethod
    def for_upload(cls, path: str, folder: Folder | str, sidecar: Mapping[str, Any]) -> HookEvent:
        """A sidecar now durable beside `path` (where the file is now, after any move to done_dir)."""
        env = _variables(
            MINIMAX_EVENT="upload",
            MINIMAX_FILE=path,
            MINIMAX_SIDECAR=sidecar_path(path),
            MINIMAX_FILE_ID=sidecar.get("fileID"),
            MINIMAX_OSS_PATH=sidecar.get("ossPath"),
            MINIMAX_ACCOUNT=sidecar.get("account") or _account_of(folder),
            MINIMAX_SHA256=sidecar.get("sha256"),
            MINIMAX_CONTENT_TYPE=sidecar.get("contentType"),
            MINIMAX_FOLDER=_path_of(folder),
        )
        return cls("upload", env, _json(sidecar), path)

    @classmethod
    def for_failure(
        cls, path: str, folder: Folder | str, record: Mapping[str, Any], account: str | None = None
    ) -> HookEvent:
        """An error record now durable beside `path`; the account is the folder's unless given."""
        env = _variables(
            MINIMAX_EVENT="failure",
            MINIMAX_FILE=path,
            MINIMAX_ERROR_RECORD=error_record_path(path),
            MINIMAX_ACCOUNT=account or _account_of(folder),
            MINIMAX_FOLDER=_path_of(folder),
            MINIMAX_ERROR=record.get("error"),
            MINIMAX_CODE=record.get("code"),
        )
        return cls("failure", env, _json(record), path)

    @classmethod
    def for_attention(
        cls, message: str, account: str | None = None, folder: Folder | str | None = None
    ) -> HookEvent:
        """Something the operator must look at: an account paused or resumed, a folder it cannot write."""
        folder_path = _path_of(folder) if folder is not None else None
        env = _variables(
            MINIMAX_EVENT="attention",
            MINIMAX_MESSAGE=message,
            MINIMAX_ACCOUNT=account,
            MINIMAX_FOLDER=folder_path,
        )
        document: dict[str, Any] = {"event": "attention", "message": message}
        document.update({k: v for k, v in (("account", account), ("folder", folder_path)) if v})
        document["at"] = utc_now_iso()
        subject = account_shown(account) if account else (folder_path or "the agent")
        return cls("attention", env, _json(document), subject)

    @classmethod
    def for_video(cls, image: str, folder: Folder | str, video: str, record: Mapping[str, Any]) -> HookEvent:
        """A generated video now on disk at `video`, made from `image`; its video record on stdin."""
        env = _variables(
            MINIMAX_EVENT="video",
            MINIMAX_FILE=image,
            MINIMAX_VIDEO=video,
            MINIMAX_VIDEO_ID=record.get("videoId"),
            MINIMAX_FILE_ID=record.get("fileID"),
            MINIMAX_ACCOUNT=record.get("account") or _account_of(folder),
            MINIMAX_FOLDER=_path_of(folder),
        )
        return cls("video", env, _json(record), video)

    def at_path(self, path: str) -> HookEvent:
        """This upload or failure event with its file (and record) now at `path`: after a move."""
        if self.event in ("attention", "video"):
            return self
        env = dict(self.env, MINIMAX_FILE=path)
        if self.event == "upload":
            env["MINIMAX_SIDECAR"] = sidecar_path(path)
        else:
            env["MINIMAX_ERROR_RECORD"] = error_record_path(path)
        try:
            document = json.loads(self.stdin)
        except ValueError:
            document = None
        stdin = self.stdin
        if isinstance(document, dict):
            stdin = _json({**document, "file": os.path.basename(path)})
        return HookEvent(self.event, _variables(**env), stdin, path)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "env": dict(self.env), "stdin": self.stdin, "subject": self.subject}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HookEvent:
        """The event `to_json` wrote; ValueError when it is not one (a journal line from another version)."""
        event, env = data.get("event"), data.get("env")
        if event not in HOOK_OF_EVENT or not isinstance(env, dict):
            raise ValueError("not a hook event")
        if not all(
            isinstance(k, str) and isinstance(v, str) and k in EVENT_VARIABLES for k, v in env.items()
        ):
            raise ValueError("not a hook event's variables")
        stdin, subject = data.get("stdin"), data.get("subject")
        if not isinstance(stdin, str) or not isinstance(subject, str):
            raise ValueError("not a hook event")
        return cls(event, dict(env), stdin, subject)


def _variables(**values: Any) -> dict[str, str]:
    """The variables that apply: those with a value, as text an environment can hold."""
    env = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        text = str(value).replace("\0", "")
        env[name] = text if len(text) <= MAX_ENV_VALUE else text[:MAX_ENV_VALUE]
    return env


def _account_of(folder: Folder | str | None) -> str | None:
    return folder.account if isinstance(folder, Folder) else None


def _path_of(folder: Folder | str) -> str:
    return folder.path if isinstance(folder, Folder) else folder


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(dict(document), ensure_ascii=False)
