"""What an answer of `videos/create` or `GET videos/{videoId}` means for one video (SPEC §1, §8)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from watcher.core.video import ApiAnswer, VideoState
from watcher.redact import escape_control, redact

PAUSE_SECONDS = 3 * 3600.0  # 412/596 and friends: the account is paused for hours
BUSY = frozenset({429, 502, 503, 504})
MODERATED = frozenset({5, 7, 14})
MAX_VIDEO_ID_CHARS = 200
MAX_URL_CHARS = 4096
_VIDEO_ID = re.compile(r"user:[^:\s]+-minimax:[^:\s]+-video:\S+")
_BAD_CHARS = re.compile(r"[/?#\s\x00-\x1f\x7f]")

# What to fix, said when an account is paused (the planner adds "until HH:MM UTC").
PAUSES = {
    412: "the account has no credits left: top it up at useapi.net",
    596: "the account is on hold at useapi.net (it lifts after some hours; see the account's page there)",
    402: "the useapi.net subscription has expired: renew it at useapi.net",
    401: "the API token was refused: check the token file",
}


def is_valid_video_id(value: object) -> bool:
    """`user:<uid>-minimax:<account>-video:<id>`, at most 200 characters, nothing a URL would reinterpret."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_VIDEO_ID_CHARS
        and _BAD_CHARS.search(value) is None
        and _VIDEO_ID.fullmatch(value) is not None
    )


@dataclass(frozen=True)
class CreateDecision:
    """`state`: GENERATING (with `video_id`), QUEUED (again, after `retry_after` or a backoff; with
    `pause` the account is paused first), FAILED or UNKNOWN (with `reason`). `counted`: whether the
    create counts against the day's cap (it may have spent credits)."""

    state: VideoState
    video_id: str | None = None
    reason: str = ""
    retry_after: float | None = None
    pause: str | None = None
    counted: bool = True


def judge_create(answer: ApiAnswer) -> CreateDecision:
    status = answer.status
    if status is None:
        if not answer.sent:
            return CreateDecision(VideoState.QUEUED, reason=answer.error or "no connection", counted=False)
        return CreateDecision(
            VideoState.UNKNOWN,
            reason=f"the answer of videos/create was lost ({answer.error or 'no answer'}): it may have spent "
            "credits; check the account at useapi.net, then run `minimax-watcher retry` to ask again",
        )
    if status == 200:
        data = answer.data or {}
        video_id = data.get("videoId")
        if video_id is None and isinstance(data.get("data"), dict):
            video_id = data["data"].get("id")  # some revisions answer `data.id`
        if is_valid_video_id(video_id):
            assert isinstance(video_id, str)
            return CreateDecision(VideoState.GENERATING, video_id=video_id)
        return CreateDecision(
            VideoState.UNKNOWN,
            reason="videos/create answered 200 without a valid videoId: it may have spent credits; check the "
            "account at useapi.net, then run `minimax-watcher retry` to ask again",
        )
    if status in BUSY:
        return CreateDecision(
            VideoState.QUEUED, reason=f"busy ({status})", retry_after=answer.retry_after, counted=False
        )
    if status in PAUSES:
        return CreateDecision(VideoState.QUEUED, reason=PAUSES[status], pause=PAUSES[status], counted=False)
    if status == 422:
        return CreateDecision(
            VideoState.FAILED, reason=_with("moderation refused the prompt or the image (422)", answer)
        )
    if 400 <= status < 500:
        return CreateDecision(VideoState.FAILED, reason=_with(f"videos/create refused it ({status})", answer))
    # Another 5xx: nothing says the video was made; counted, as it may have been.
    return CreateDecision(
        VideoState.QUEUED, reason=f"server error ({status})", retry_after=answer.retry_after
    )


@dataclass(frozen=True)
class PollDecision:
    """`state`: GENERATING (poll again, after `retry_after` when given), DOWNLOADING (from `url`) or FAILED
    (`result` "failed" or "moderated", `reason`)."""

    state: VideoState
    percent: int | None = None
    status_label: str | None = None
    url: str | None = None
    result: str = ""
    reason: str = ""
    retry_after: float | None = None


def judge_poll(answer: ApiAnswer) -> PollDecision:
    status = answer.status
    if status is None or status in BUSY or status >= 500:
        return PollDecision(VideoState.GENERATING, retry_after=answer.retry_after, reason=answer.error)
    if status == 404:
        return PollDecision(
            VideoState.FAILED, result="failed", reason="the video was removed (404), most often by moderation"
        )
    if status != 200:
        # 401/402/others: nothing about this video; ask again later (the create side pauses accounts).
        return PollDecision(VideoState.GENERATING, reason=f"polling answered {status}")
    data = answer.data or {}
    label = data.get("statusLabel")
    label = escape_control(label[:100]) if isinstance(label, str) else None
    percent = data.get("percent")
    percent = (
        max(0, min(100, int(percent))) if isinstance(percent, (int, float)) and percent == percent else None
    )
    code = data.get("status")
    if data.get("statusFinal") is not True:
        return PollDecision(VideoState.GENERATING, percent=percent, status_label=label)
    if code == 2:
        url = _url(data.get("downloadURL")) or _url(data.get("videoURL"))
        if url is None:
            return PollDecision(
                VideoState.FAILED,
                status_label=label,
                result="failed",
                reason="the video completed without an http(s) downloadURL or videoURL",
            )
        return PollDecision(VideoState.DOWNLOADING, percent=100, status_label=label, url=url)
    if code in MODERATED:
        return PollDecision(
            VideoState.FAILED, status_label=label, result="moderated", reason=f"moderated (status {code})"
        )
    message = data.get("message")
    said = f": {escape_control(redact(message[:1000]))[:300]}" if isinstance(message, str) and message else ""
    return PollDecision(
        VideoState.FAILED,
        status_label=label,
        result="failed",
        reason=f"generation failed (status {code}){said}",
    )


def _url(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > MAX_URL_CHARS:
        return None
    if not value.lower().startswith(("https://", "http://")) or any(
        c.isspace() or ord(c) < 32 for c in value
    ):
        return None
    return value


def _with(reason: str, answer: ApiAnswer) -> str:
    return f"{reason}: {answer.error}" if answer.error else reason
