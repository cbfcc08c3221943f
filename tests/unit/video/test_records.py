"""Unit tests for `watcher.video.records`: SPEC §8's fields, redacted, written atomically without
following a dropper's symlink."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from watcher.core.video import VideoRequest, VideoState, canonical_json
from watcher.redact import register_secret
from watcher.video.records import build_video_record, write_video_record

SPEC_FIELDS = [
    "videoId",
    "account",
    "fileID",
    "model",
    "prompt",
    "params",
    "status",
    "statusLabel",
    "submittedAt",
    "finishedAt",
    "video",
    "size",
    "sha256",
    "error",
]
VIDEO_ID = "user:1-minimax:123456-video:42"
FILE_ID = "user:1-minimax:123456-file:7"
TOKEN = "user:1-recordsTOKENsecret"


def unknowns(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "state": VideoState.QUEUED,
        "params": {},
        "video_id": None,
        "status_label": None,
        "submitted_at": None,
        "finished_at": None,
        "video": None,
        "size": None,
        "sha256": None,
        "error": None,
        "model": "I2V-2.3",
        "prompt": None,
        "account": "123456",
        "file_id": FILE_ID,
    }
    return {**base, **overrides}


def test_a_done_record_has_specs_fields_exactly() -> None:
    record = build_video_record(
        None,
        **unknowns(
            state=VideoState.DONE,
            params={"options": "768p-6sec"},
            video_id=VIDEO_ID,
            status_label="completed",
            submitted_at="2026-12-07T20:00:00Z",
            finished_at="2026-12-07T20:03:00Z",
            video="videos/shot.mp4",
            size=123_456,
            sha256="ab" * 32,
            prompt="slow dolly in",
        ),
    )
    assert list(record) == SPEC_FIELDS
    assert record == {
        "videoId": VIDEO_ID,
        "account": "123456",
        "fileID": FILE_ID,
        "model": "I2V-2.3",
        "prompt": "slow dolly in",
        "params": {"options": "768p-6sec"},
        "status": "done",
        "statusLabel": "completed",
        "submittedAt": "2026-12-07T20:00:00Z",
        "finishedAt": "2026-12-07T20:03:00Z",
        "video": "videos/shot.mp4",
        "size": 123_456,
        "sha256": "ab" * 32,
        "error": None,
    }


def test_unknown_fields_are_present_as_null() -> None:
    record = build_video_record(None, **unknowns())
    assert list(record) == SPEC_FIELDS
    nulls = {key for key, value in record.items() if value is None}
    assert nulls == {
        "videoId",
        "prompt",
        "statusLabel",
        "submittedAt",
        "finishedAt",
        "video",
        "size",
        "sha256",
        "error",
    }
    assert record["status"] == "queued"


@pytest.mark.parametrize("state", list(VideoState))
def test_the_status_is_the_states_value(state: VideoState) -> None:
    assert build_video_record(None, **unknowns(state=state))["status"] == state.value


def test_a_moderated_failure_says_so() -> None:
    failed = unknowns(state=VideoState.FAILED, error="moderated (status 7)")
    assert build_video_record(None, **failed, moderated=True)["status"] == "moderated"
    assert build_video_record(None, **failed)["status"] == "failed"
    # Only a failure can be moderated.
    assert build_video_record(None, **unknowns(state=VideoState.DONE), moderated=True)["status"] == "done"


def test_the_request_sent_is_what_is_recorded() -> None:
    request = VideoRequest(
        folder="/srv/drop",
        image="shot.png",
        account="654321",
        file_id="user:1-minimax:654321-file:9",
        sha256="cd" * 32,
        model="I2V-01",
        prompt="from the request",
        params_json=canonical_json({"duration": 6}),
    )
    record = build_video_record(request, **unknowns(state=VideoState.GENERATING, video_id=VIDEO_ID))
    assert (record["account"], record["fileID"], record["model"], record["prompt"], record["params"]) == (
        "654321",
        "user:1-minimax:654321-file:9",
        "I2V-01",
        "from the request",
        {"duration": 6},
    )


def test_every_text_is_redacted() -> None:
    register_secret(TOKEN)
    record = build_video_record(
        None,
        **unknowns(
            state=VideoState.FAILED,
            prompt=f"a cat {TOKEN}",
            error=f"HTTP 401: bad token {TOKEN}",
            status_label=TOKEN,
            params={"note": TOKEN, "nested": [{"k": f"x{TOKEN}"}], TOKEN: 1},
        ),
    )
    assert TOKEN not in json.dumps(record)
    assert record["prompt"] == "a cat <redacted>"
    assert record["params"] == {"note": "<redacted>", "nested": [{"k": "x<redacted>"}], "<redacted>": 1}


def test_the_record_is_written_beside_the_image(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    record = build_video_record(None, **unknowns(state=VideoState.GENERATING, video_id=VIDEO_ID))
    write_video_record(str(tmp_path), f"{tmp_path}/sub/shot.png", record)
    assert json.loads((tmp_path / "sub" / "shot.png.video.json").read_text()) == record
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["shot.png.video.json"]  # no temporary left


def test_a_symlink_planted_at_the_record_is_replaced_not_written_through(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (drop / "shot.png.video.json").symlink_to(victim)
    record = build_video_record(None, **unknowns())
    write_video_record(str(drop), f"{drop}/shot.png", record)
    assert victim.read_text() == "precious"
    written = drop / "shot.png.video.json"
    assert not written.is_symlink() and json.loads(written.read_text()) == record


def test_a_record_below_a_symlinked_folder_is_not_written(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (drop / "sub").symlink_to(elsewhere)
    with pytest.raises(OSError):
        write_video_record(str(drop), f"{drop}/sub/shot.png", build_video_record(None, **unknowns()))
    assert list(elsewhere.iterdir()) == []
