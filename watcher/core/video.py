"""Image to video (SPEC §8): a folder's `generate` settings, one video's request (its intent), the
answers of `videos/create` and `GET videos/{videoId}` as plain values. See docs/architecture.md,
"From image to video"."""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watcher.core.media import IMAGE_SUFFIXES

VIDEO_RECORD_SUFFIX = ".video.json"  # `<image>.video.json`, beside the image
PROMPT_SUFFIX = ".txt"  # `<stem>.txt`, beside the image
END_FRAME_INFIX = ".end"  # `<stem>.end.<ext>`: the end frame of `<stem>.<ext>`
MAX_PROMPT_CHARS = 2000


def is_end_frame(name: str) -> bool:
    """`<stem>.end.<image ext>`: an end frame, uploaded for its image's create and never a video of its
    own, whether or not its image is there yet (a name rule, so the order they arrive in cannot matter)."""
    base, ext = os.path.splitext(name)
    return (
        ext.lower() in IMAGE_SUFFIXES and base.endswith(END_FRAME_INFIX) and len(base) > len(END_FRAME_INFIX)
    )


@dataclass(frozen=True)
class VideoSettings:
    """A folder's `generate` block, resolved: `output_dir` is absolute."""

    model: str
    output_dir: str
    prompt: str | None = None
    params_json: str = "{}"  # canonical JSON (`canonical_json`): hashable, and the intent key's part
    max_jobs: int = 2
    max_per_day: int = 50
    poll_seconds: float = 15.0
    require_prompt_file: bool = False

    @property
    def params(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.params_json)
        return loaded


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class VideoRequest:
    """What one `videos/create` asks for: the intent journalled before it is sent. `image` is the
    path relative to its folder when the request was made (a `done_dir` move does not change it)."""

    folder: str
    image: str
    account: str
    file_id: str
    sha256: str  # the image's bytes (from its sidecar)
    model: str
    prompt: str
    params_json: str = "{}"
    end_frame_file_id: str | None = None

    @property
    def key(self) -> str:
        """One video per version of a file, prompt and settings (SPEC §8): the same key is never sent
        twice. The file's place is part of it: another file with the same bytes is another take."""
        parts = [
            self.folder,
            self.image,
            self.account,
            self.sha256,
            self.model,
            self.prompt,
            self.params_json,
            self.end_frame_file_id or "",
        ]
        return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:32]

    def body(self) -> dict[str, Any]:
        """The JSON body of `videos/create`: the model's own `params` first, so that they can never
        replace the account, the fileID, the model or the prompt."""
        body: dict[str, Any] = dict(json.loads(self.params_json))
        body.update(account=self.account, fileID=self.file_id, model=self.model)
        if self.prompt:
            body["prompt"] = self.prompt
        if self.end_frame_file_id:
            body["end_frame_fileID"] = self.end_frame_file_id
        return body


class VideoState(enum.Enum):
    """Where one video is; `core/video_phases.py` holds the legal moves between them."""

    QUEUED = "queued"  # waiting for a slot, the day's cap, its prompt file or its end frame
    SUBMITTING = "submitting"  # journalled; videos/create sent, its answer not yet in
    GENERATING = "generating"  # a videoId: polled until final
    DOWNLOADING = "downloading"  # final and completed: the MP4 is being fetched
    DONE = "done"  # the MP4 is on disk and the record says so
    FAILED = "failed"  # ended without a video (refused, moderated, failed, removed): the record says why
    UNKNOWN = "unknown"  # a create whose answer was lost: never resubmitted but by `retry`


FINAL_STATES = frozenset({VideoState.DONE, VideoState.FAILED, VideoState.UNKNOWN})


@dataclass(frozen=True)
class ApiAnswer:
    """One HTTP exchange with the API as core judges it. `status` None: no answer (a network error,
    a timeout); `sent` then says whether the request may have reached the server (a create whose
    answer was lost may have spent credits). `data` is the JSON object of the body, if it was one."""

    status: int | None
    data: Mapping[str, Any] | None = None
    retry_after: float | None = None
    error: str = ""  # a short reason, redacted, for logs and records
    sent: bool = True


# ---- what `status` and the metrics show (`core/generation.summarize_entries`) ----


@dataclass(frozen=True)
class FolderVideos:
    queued: int = 0
    generating: int = 0
    done: int = 0
    failed: int = 0
    unknown: int = 0
    in_progress: tuple[tuple[str, int], ...] = ()  # (image relative to the folder, percent)


@dataclass(frozen=True)
class AccountVideos:
    today: int
    cap: int
    in_flight: int
    max_jobs: int
    paused_until: float | None = None
    pause_reason: str | None = None


@dataclass(frozen=True)
class VideoSummary:
    folders: Mapping[str, FolderVideos]
    accounts: Mapping[str, AccountVideos]
