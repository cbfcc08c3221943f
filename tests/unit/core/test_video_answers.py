"""What each answer of videos/create and GET videos/{videoId} means, status code by status code."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.core.video import ApiAnswer, VideoState
from watcher.core.video_answers import is_valid_video_id, judge_create, judge_poll

VID = "user:12345-minimax:678-video:abc123"


@pytest.mark.parametrize(
    "value",
    [
        VID,
        "user:1-minimax:2-video:3",
        "user:1-minimax:2-video:" + "x" * (200 - len("user:1-minimax:2-video:")),
    ],
)
def test_a_video_id_of_the_documented_shape_is_valid(value: str) -> None:
    assert is_valid_video_id(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        7,
        "",
        "user:1-minimax:2-file:3",
        VID + "/../x",
        VID + "?a=1",
        VID + "#x",
        VID + " x",
        VID + "\n",
        VID + "\x00",
        "user:1-minimax:2-video:" + "x" * 200,
        "../user:1-minimax:2-video:3",
    ],
)
def test_an_odd_video_id_is_not(value: object) -> None:
    assert not is_valid_video_id(value)


def test_200_with_a_video_id_is_generating() -> None:
    d = judge_create(ApiAnswer(200, {"videoId": VID}))
    assert (d.state, d.video_id, d.counted) == (VideoState.GENERATING, VID, True)


def test_200_with_data_id_is_generating() -> None:
    assert judge_create(ApiAnswer(200, {"data": {"id": VID}})).video_id == VID


@pytest.mark.parametrize("data", [{}, {"videoId": "video:1/../../x"}, {"videoId": 5}, None])
def test_200_without_a_valid_video_id_is_unknown_as_it_may_have_spent(data: dict[str, Any] | None) -> None:
    d = judge_create(ApiAnswer(200, data))
    assert d.state is VideoState.UNKNOWN and d.counted
    assert "may have spent credits" in d.reason and "minimax-watcher retry" in d.reason


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_busy_is_queued_again_not_counted_with_its_retry_after(status: int) -> None:
    d = judge_create(ApiAnswer(status, retry_after=42.0))
    assert (d.state, d.retry_after, d.counted, d.pause) == (VideoState.QUEUED, 42.0, False, None)


def test_no_connection_is_queued_again_not_counted() -> None:
    d = judge_create(ApiAnswer(None, error="connection refused", sent=False))
    assert (d.state, d.counted) == (VideoState.QUEUED, False)


def test_a_lost_answer_after_sending_is_unknown_and_counted() -> None:
    d = judge_create(ApiAnswer(None, error="read timed out", sent=True))
    assert (d.state, d.counted) == (VideoState.UNKNOWN, True)
    assert "read timed out" in d.reason and "may have spent credits" in d.reason


@pytest.mark.parametrize(
    ("status", "words"),
    [(412, "top it up at useapi.net"), (596, "on hold"), (402, "subscription"), (401, "token")],
)
def test_account_problems_pause_with_what_to_fix(status: int, words: str) -> None:
    d = judge_create(ApiAnswer(status))
    assert d.state is VideoState.QUEUED and not d.counted
    assert d.pause is not None and words in d.pause


def test_422_is_failed_by_moderation() -> None:
    d = judge_create(ApiAnswer(422, error="prompt refused"))
    assert d.state is VideoState.FAILED and "moderation" in d.reason and "prompt refused" in d.reason


@pytest.mark.parametrize("status", [400, 403, 409, 413])
def test_other_4xx_are_permanent_failures(status: int) -> None:
    d = judge_create(ApiAnswer(status))
    assert d.state is VideoState.FAILED and str(status) in d.reason


def test_another_5xx_is_retried_but_counted_as_it_may_have_spent() -> None:
    d = judge_create(ApiAnswer(500))
    assert (d.state, d.counted) == (VideoState.QUEUED, True)


def poll(data: dict[str, Any] | None, status: int | None = 200, **kw: Any) -> Any:
    return judge_poll(ApiAnswer(status, data, **kw))


def test_not_final_keeps_its_percent() -> None:
    d = poll({"status": 1, "statusFinal": False, "percent": 40, "statusLabel": "processing"})
    assert (d.state, d.percent, d.status_label) == (VideoState.GENERATING, 40, "processing")


@pytest.mark.parametrize("percent", [-5, 500, float("nan"), "50", True])
def test_an_odd_percent_is_bounded_or_ignored(percent: object) -> None:
    d = poll({"status": 1, "statusFinal": False, "percent": percent})
    assert d.percent is None or 0 <= d.percent <= 100


def test_completed_downloads_the_unwatermarked_url_first() -> None:
    d = poll(
        {
            "status": 2,
            "statusFinal": True,
            "downloadURL": "https://cdn/a.mp4",
            "videoURL": "https://cdn/w.mp4",
        }
    )
    assert (d.state, d.url) == (VideoState.DOWNLOADING, "https://cdn/a.mp4")


def test_completed_falls_back_to_video_url() -> None:
    d = poll({"status": 2, "statusFinal": True, "downloadURL": "", "videoURL": "http://cdn/w.mp4"})
    assert d.url == "http://cdn/w.mp4"


@pytest.mark.parametrize(
    "url", ["file:///etc/shadow", "ftp://x/a.mp4", "javascript:x", "https://a b", 5, None]
)
def test_completed_without_an_http_url_fails(url: object) -> None:
    d = poll({"status": 2, "statusFinal": True, "downloadURL": url, "videoURL": url})
    assert d.state is VideoState.FAILED and "http(s)" in d.reason


def test_status_3_fails_with_the_message() -> None:
    d = poll({"status": 3, "statusFinal": True, "message": "upstream error"})
    assert (d.state, d.result) == (VideoState.FAILED, "failed") and "upstream error" in d.reason


@pytest.mark.parametrize("code", [5, 7, 14])
def test_moderated_statuses(code: int) -> None:
    d = poll({"status": code, "statusFinal": True})
    assert (d.state, d.result) == (VideoState.FAILED, "moderated")


def test_404_while_polling_is_removed() -> None:
    d = poll(None, 404)
    assert d.state is VideoState.FAILED and "removed" in d.reason and "moderation" in d.reason


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504, 401])
def test_trouble_while_polling_is_polled_again(status: int | None) -> None:
    d = poll(None, status, retry_after=9.0)
    assert d.state is VideoState.GENERATING


def test_a_hostile_message_is_bounded_and_has_no_control_characters() -> None:
    d = poll({"status": 3, "statusFinal": True, "message": "\x1b[2Jx" * 1000})
    assert len(d.reason) < 400 and "\x1b" not in d.reason
