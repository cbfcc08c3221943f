"""Audio and video beside images (SPEC §5): each kind as its bytes say, only where the folder's media take it.

The real agent, real files and inotify, the real emulator, which records the Content-Type of each upload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A, TOKEN, error_record_of, read_json, sidecar_of, wait_for, wait_sidecar
from tests.helpers.images import png_bytes, sha256
from tests.helpers.media import mp3_bytes, mp4_bytes, pdf_bytes, wav_bytes
from watcher.emulator import Emulator

EVERY_KIND = ["image", "audio", "video"]


def watcher_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m watcher ARGS` as a user runs it, with the test token and its own state folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env |= {"USEAPI_TOKEN": TOKEN, "XDG_STATE_HOME": str(cwd / "state")}
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_each_kind_uploads_with_the_type_its_bytes_say(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "media": EVERY_KIND}])
    files = {
        "song.mp3": (mp3_bytes(1), "audio/mpeg"),
        "bare-frames.MP3": (mp3_bytes(2, id3=False), "audio/mpeg"),
        "take.wav": (wav_bytes(3), "audio/wav"),
        "clip.mp4": (mp4_bytes(4), "video/mp4"),
        "plain-ffmpeg.mp4": (mp4_bytes(5, index_first=False, large_mdat=True), "video/mp4"),
        "still.png": (png_bytes(6), "image/png"),
        "really-a-wav.mp3": (wav_bytes(7), "audio/wav"),  # the bytes decide, not the name
    }
    for name, (data, _) in files.items():
        (drop / name).write_bytes(data)

    for name, (data, content_type) in files.items():
        sidecar = wait_sidecar(drop / name)
        assert sidecar["contentType"] == content_type, name
        assert sidecar["sha256"] == sha256(data), name
    sent = {upload.sha256: upload.content_type for upload in emulator.uploads}
    assert sent == {sha256(data): content_type for data, content_type in files.values()}


def test_a_kind_the_folder_does_not_take_is_not_a_candidate_at_all(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    start_agent(
        [
            {"path": str(drop), "account": ACCOUNT_A},  # media: [image], the default
            {"path": str(sounds), "account": ACCOUNT_A, "media": ["audio"]},
        ]
    )
    ignored = {
        drop / "song.mp3": mp3_bytes(10),
        drop / "take.wav": wav_bytes(11),
        drop / "clip.mp4": mp4_bytes(12),
        sounds / "clip.mp4": mp4_bytes(13),
        sounds / "cover.png": png_bytes(14),
    }
    for path, data in ignored.items():
        path.write_bytes(data)
    # Written after the ignored files, in the same folders: by the time these are done, the others
    # would have been uploaded or refused.
    (drop / "control.png").write_bytes(png_bytes(15))
    (sounds / "control.wav").write_bytes(wav_bytes(16))
    wait_sidecar(drop / "control.png")
    wait_sidecar(sounds / "control.wav")

    for path in ignored:
        assert not sidecar_of(path).exists(), path
        assert not error_record_of(path).exists(), path
    assert sorted(u.content_type or "" for u in emulator.uploads) == ["audio/wav", "image/png"]

    status = watcher_command("status", "--json", "--config", str(tmp_path / "config.yaml"), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    counts = [(f["uploaded"], f["pending"], f["failed"]) for f in json.loads(status.stdout)["folders"]]
    assert counts == [(1, 0, 0), (1, 0, 0)]


def test_a_truncated_mp4_and_an_mp3_wait_the_full_settle_time(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "media": ["audio", "video"]}], settle_seconds=2)
    whole = mp4_bytes(20, length=20_000, index_first=False)
    cut = mp4_bytes(21, length=20_000, index_first=False)[:12_000]  # mdat promises more; no moov yet

    written = time.monotonic()
    (drop / "cut.mp4").write_bytes(cut)
    (drop / "song.mp3").write_bytes(mp3_bytes(22))
    (drop / "whole.mp4").write_bytes(whole)

    # The whole MP4's boxes fill it and hold moov: its close ends the wait after a short confirmation.
    wait_sidecar(drop / "whole.mp4", timeout=10)
    assert not sidecar_of(drop / "cut.mp4").exists(), "the truncated MP4 took the fast path"
    assert not sidecar_of(drop / "song.mp3").exists(), "the MP3 took the fast path"

    cut_sidecar = wait_sidecar(drop / "cut.mp4", timeout=15)
    mp3_sidecar = wait_sidecar(drop / "song.mp3", timeout=15)
    assert time.monotonic() - written >= 2
    # Still uploaded: a file that never looks complete is not refused, it waits the settle time.
    assert (cut_sidecar["contentType"], cut_sidecar["size"]) == ("video/mp4", len(cut))
    assert mp3_sidecar["contentType"] == "audio/mpeg"
    assert len(emulator.uploads) == 3


def test_a_pdf_named_mp3_gets_an_unsupported_type_record_saying_what_it_is(
    start_agent, drop: Path, emulator: Emulator
) -> None:
    start_agent([{"path": str(drop), "account": ACCOUNT_A, "media": ["image", "audio"]}])
    (drop / "x.mp3").write_bytes(pdf_bytes())
    (drop / "scan.png").write_bytes(pdf_bytes())
    (drop / "clip.mp3").write_bytes(mp4_bytes(30))

    record = wait_for(lambda: read_json(error_record_of(drop / "x.mp3")), 15, "the error record of x.mp3")
    assert record["code"] == "unsupported_type"
    assert record["error"] == "not a PNG, JPEG, WebP, MP3 or WAV file: it is a PDF document"
    assert record["size"] == len(pdf_bytes())

    image = wait_for(
        lambda: read_json(error_record_of(drop / "scan.png")), 15, "the error record of scan.png"
    )
    assert (image["code"], image["error"]) == (
        "not_an_image",
        "not a PNG, JPEG, WebP, MP3 or WAV file: it is a PDF document",
    )
    video = wait_for(
        lambda: read_json(error_record_of(drop / "clip.mp3")), 15, "the error record of clip.mp3"
    )
    assert (video["code"], video["error"]) == (
        "unsupported_type",
        "not a PNG, JPEG, WebP, MP3 or WAV file: it is an MP4 video, and video is not in this folder's media",
    )
    for name in ("x.mp3", "scan.png", "clip.mp3"):
        assert not sidecar_of(drop / name).exists(), name
    assert emulator.requests == []


def test_the_upload_command_takes_the_folders_kinds_or_every_kind_outside_one(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    config = {"api": {"base_url": emulator.base_url}, "folders": [{"path": "drop", "account": ACCOUNT_A}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    loose = tmp_path / "elsewhere"
    loose.mkdir()
    (loose / "take.wav").write_bytes(wav_bytes(40))
    (drop / "song.png").write_bytes(mp3_bytes(41))  # in a folder of images only

    outside = watcher_command("upload", "--account", ACCOUNT_A, str(loose / "take.wav"), cwd=tmp_path)
    assert outside.returncode == 0, outside.stderr
    assert json.loads(outside.stdout)["contentType"] == "audio/wav"

    inside = watcher_command("upload", str(drop / "song.png"), cwd=tmp_path)
    assert inside.returncode == 1
    assert "it is MP3 audio, and audio is not in this folder's media" in inside.stderr
    assert read_json(error_record_of(drop / "song.png")) is not None
    assert [u.content_type for u in emulator.uploads] == ["audio/wav"]
