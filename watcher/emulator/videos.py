"""The emulated videos (SPEC §1): what `videos/create` and `GET videos/{videoId}` answer, as state over
an injected clock, without sockets or threads (the emulator calls it under its lock)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from watcher.emulator.decision import Answer, error_message
from watcher.emulator.faults import Fault
from watcher.emulator.mp4 import HEIGHT, WIDTH

__all__ = [
    "DOWNLOAD_PREFIX",
    "STATUS_LABELS",
    "Outcome",
    "Studio",
    "Video",
    "VideoView",
    "download_name",
]

VIDEO_NUMBER_BASE: Final = 510_000_000_000
DOWNLOAD_PREFIX: Final = "/_emulator/downloads/"
QUEUED_FRACTION: Final = 0.2  # the first fifth of a video's generation time is spent queued
MAX_PROMPT_CHARS: Final = 2000
STATUS_LABELS: Final[Mapping[int, str]] = MappingProxyType(
    {0: "pending", 11: "queued", 1: "processing", 12: "processing", 2: "completed", 3: "failed"}
    | dict.fromkeys((5, 7, 14), "moderated")
)
_MESSAGES: Final[Mapping[int, str]] = MappingProxyType(
    {3: "Video generation failed"} | dict.fromkeys((5, 7, 14), "The video was blocked by content moderation")
)
_DOWNLOAD_NAME = re.compile(r"(\d{1,30})(-wm)?\.mp4")

Take = Callable[[str], Fault | None]  # takes the pending fault for an account, if one applies


@dataclasses.dataclass(frozen=True)
class VideoView:
    """A video as a poll sees it at one moment."""

    status: int
    label: str
    final: bool
    percent: int


@dataclasses.dataclass
class Video:
    """One created video. It is queued, then processing, then ends with `final_status` once its
    `generation_seconds` are up (or at `ended_at`, set when a poll fault ends it early)."""

    number: int
    video_id: str
    account: str
    file_id: str
    model: str
    created_at: float
    generation_seconds: float
    final_status: int = 2
    never_ends: bool = False
    ended_at: float | None = None

    def view(self, now: float) -> VideoView:
        elapsed = max(0.0, now - self.created_at)
        span = self.generation_seconds
        percent = 100 if span <= 0 else int(100 * elapsed / span)
        end = self.created_at + span if self.ended_at is None else self.ended_at
        if self.never_ends:
            return VideoView(12, STATUS_LABELS[12], False, max(1, min(99, percent)))
        if now >= end:
            final = self.final_status
            shown = 100 if final == 2 else max(0, min(99, percent))
            return VideoView(final, STATUS_LABELS.get(final, f"status {final}"), True, shown)
        if elapsed < QUEUED_FRACTION * span:
            return VideoView(11, STATUS_LABELS[11], False, 0)
        return VideoView(12, STATUS_LABELS[12], False, max(1, min(99, percent)))

    def running(self, now: float) -> bool:
        """Whether it takes one of its account's `max_jobs` slots."""
        return not self.view(now).final

    def poll_body(self, now: float, origin: str) -> dict[str, Any]:
        view = self.view(now)
        completed = view.final and view.status == 2
        url = f"{origin}{DOWNLOAD_PREFIX}{self.number}" if completed else ""
        return {
            "videoId": self.video_id,
            "status": view.status,
            "statusLabel": view.label,
            "statusFinal": view.final,
            "percent": view.percent,
            "message": _MESSAGES.get(view.status, "") if view.final else "",
            "videoURL": f"{url}-wm.mp4" if url else "",
            "downloadURL": f"{url}.mp4" if url else "",
            "width": WIDTH,
            "height": HEIGHT,
        }

    def to_dict(self, now: float) -> dict[str, Any]:
        view = self.view(now)
        return {
            "videoId": self.video_id,
            "account": self.account,
            "fileID": self.file_id,
            "model": self.model,
            "status": view.status,
            "statusFinal": view.final,
            "percent": view.percent,
        }


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The emulator's answer to one create or poll. `answer` None: the connection is cut without one.
    `video` is the video made or polled; `fault` the fault taken, if any; `hold` how long to keep the
    answer back."""

    answer: Answer | None
    account: str | None = None
    video: Video | None = None
    fault: Fault | None = None
    hold: float = 0.0


def download_name(name: str) -> int | None:
    """The video number of a download's file name (`<n>.mp4`, or `<n>-wm.mp4` for the videoURL)."""
    match = _DOWNLOAD_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def _faulted(fault: Fault | None, normal: dict[str, Any]) -> Answer:
    """The answer a create or poll gives: its normal JSON, or what its fault makes of it."""
    headers = () if fault is None or fault.retry_after is None else (("Retry-After", fault.retry_after),)
    if fault is not None and fault.kind == "non_json":
        return Answer(200, b"<html>oops</html>", "text/html", headers)
    if fault is not None and fault.kind == "answer":
        body = normal | fault.answer if isinstance(fault.answer, dict) else fault.answer
        return Answer.json(fault.status or 200, body, headers)
    return Answer.json(200, normal, headers)


def _refusal(status: int, message: str, account: str | None = None, fault: Fault | None = None) -> Outcome:
    headers = () if fault is None or fault.retry_after is None else (("Retry-After", fault.retry_after),)
    hold = 0.0 if fault is None else fault.delay
    return Outcome(Answer.error(status, message, headers), account, None, fault, hold)


class Studio:
    """Every video and every fileID of one emulator; not thread-safe (the emulator holds its lock)."""

    def __init__(
        self,
        *,
        uid: str,
        accounts: Sequence[str],
        generation_seconds: float,
        max_jobs: int,
        clock: Callable[[], float],
    ) -> None:
        self.uid = uid
        self.accounts = tuple(accounts)
        self.generation_seconds = 0.0
        self.max_jobs = 1
        self.configure(generation_seconds=generation_seconds, max_jobs=max_jobs)
        self._clock = clock
        self._issued: dict[str, set[str]] = {}
        self._videos: dict[int, Video] = {}
        self._by_id: dict[str, Video] = {}
        self._numbers = itertools.count(VIDEO_NUMBER_BASE + 1)

    def configure(self, *, generation_seconds: float | None = None, max_jobs: int | None = None) -> None:
        """Change the settings of videos created from now on (raises ValueError)."""
        if generation_seconds is not None:
            if not 0 <= generation_seconds <= 86_400:
                raise ValueError(f"generation_seconds must be 0-86400, got {generation_seconds}")
            self.generation_seconds = float(generation_seconds)
        if max_jobs is not None:
            if not 1 <= max_jobs <= 1000:
                raise ValueError(f"max_jobs must be 1-1000, got {max_jobs}")
            self.max_jobs = max_jobs

    def issue(self, account: str, file_id: str) -> None:
        """Remember a fileID this emulator gave out: only those can be made into videos."""
        self._issued.setdefault(account, set()).add(file_id)

    def videos(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [video.to_dict(now) for video in self._videos.values()]

    def create(self, data: Any, take: Take) -> Outcome:
        """Answer `videos/create` with the JSON body `data` (the token has been checked)."""
        if not isinstance(data, dict):
            return _refusal(400, "The body must be a JSON object")
        account = data.get("account")
        if account is None:
            if len(self.accounts) != 1:
                return _refusal(400, "account is required when several accounts are configured")
            account = self.accounts[0]
        if not isinstance(account, str) or account not in self.accounts:
            return _refusal(400, f"Account {str(account)[:100]} not found", str(account)[:100])
        problem = self._check_body(data, account)
        if problem:
            return _refusal(400, problem, account)
        now = self._clock()
        running = sum(1 for v in self._videos.values() if v.account == account and v.running(now))
        limit = data.get("maxJobs", self.max_jobs)  # the body's own maxJobs wins, as useapi's does
        if running >= limit:
            message = f"Account {account} is busy: {running} of maxJobs {limit} videos are running"
            return _refusal(429, message, account)
        fault = take(account)
        if fault is not None and fault.kind == "status":
            return _refusal(fault.status, error_message(fault.status), account, fault)
        number = next(self._numbers)
        video = Video(
            number=number,
            video_id=f"user:{self.uid}-minimax:{account}-video:{number}",
            account=account,
            file_id=data["fileID"],
            model=data["model"],
            created_at=now,
            generation_seconds=self.generation_seconds,
        )
        if fault is not None and fault.kind == "final":
            video.final_status = fault.video_status if fault.video_status is not None else 3
        video.never_ends = fault is not None and fault.kind == "never_ends"
        self._videos[number] = video
        self._by_id[video.video_id] = video
        normal = video.poll_body(now, "") | {
            "account": account,
            "fileID": video.file_id,
            "model": video.model,
        }
        answer = None if fault is not None and fault.kind == "cut" else _faulted(fault, normal)
        return Outcome(answer, account, video, fault, 0.0 if fault is None else fault.delay)

    def _check_body(self, data: Mapping[str, Any], account: str) -> str | None:
        issued = self._issued.get(account, set())
        for name in ("fileID", "end_frame_fileID"):
            value = data.get(name)
            if value is None and name == "end_frame_fileID":
                continue
            if not isinstance(value, str) or not value:
                return f"{name} is required (a fileID from POST /files/ for account {account})"
            if value not in issued:
                return f"{name} {value[:200]} was not found for account {account}: upload the file first"
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return "model is required"
        jobs = data.get("maxJobs")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 10):
            return "maxJobs must be an integer from 1 to 10"
        prompt = data.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            return "prompt must be a string"
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            return f"prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed"
        return None

    def poll(self, video_id: str, take: Callable[[str, str], Fault | None], origin: str) -> Outcome:
        """Answer `GET videos/{video_id}` (the token has been checked)."""
        video = self._by_id.get(video_id)
        if video is None:
            return _refusal(404, f"Video {video_id[:200]} not found")
        fault = take(video.account, video.video_id)
        now = self._clock()
        if fault is not None and fault.kind == "status":
            return dataclasses.replace(
                _refusal(fault.status, error_message(fault.status), video.account, fault), video=video
            )
        if fault is not None and fault.kind == "final":
            video.final_status = fault.video_status if fault.video_status is not None else 3
            video.ended_at, video.never_ends = now, False
        if fault is not None and fault.kind == "never_ends":
            video.never_ends = True
        answer = (
            None
            if fault is not None and fault.kind == "cut"
            else _faulted(fault, video.poll_body(now, origin))
        )
        return Outcome(answer, video.account, video, fault, 0.0 if fault is None else fault.delay)

    def downloadable(self, name: str) -> Video | None:
        """The completed video a download's file name names, else None."""
        number = download_name(name)
        video = None if number is None else self._videos.get(number)
        if video is None:
            return None
        view = video.view(self._clock())
        return video if view.final and view.status == 2 else None
