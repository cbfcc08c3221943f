"""`scan --dry-run` for folders with `generate`: how many videos the uploads would ask for (images, not
end frames, not audio or video files), and that a dry run spends nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.images import png_bytes
from tests.helpers.media import mp4_bytes
from watcher.cli.dry_run import plan, render_videos
from watcher.config.load import Config, load_config
from watcher.core.signature import signature_of
from watcher.disk.records import build_sidecar


def config_of(tmp_path: Path, folders: list[dict[str, Any]]) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"folders": folders}))
    return load_config(path)


def test_pending_images_but_not_end_frames_or_other_media_count_as_videos(tmp_path: Path) -> None:
    shots, plain = tmp_path / "shots", tmp_path / "plain"
    shots.mkdir()
    plain.mkdir()
    for name, seed in (("a.png", 1), ("b.png", 2), ("b.end.png", 3), ("lone.end.png", 4)):
        (shots / name).write_bytes(png_bytes(seed))
    (shots / "clip.mp4").write_bytes(mp4_bytes())
    (shots / "words.png").write_bytes(b"not an image")  # refused: no upload, no video
    done = shots / "done.png"
    done.write_bytes(png_bytes(5))
    sidecar = build_sidecar(image_path=str(done), account=ACCOUNT_A, file_id=f"user:1-minimax:{ACCOUNT_A}-file:5",
                            oss_path="oss/5", signature=signature_of(os.stat(done)), sha256="0" * 64,
                            content_type="image/png")  # fmt: skip
    (shots / "done.png.json").write_text(json.dumps(sidecar))  # uploaded already: no new video by itself
    (plain / "c.png").write_bytes(png_bytes(6))
    config = config_of(
        tmp_path,
        [
            {
                "path": str(shots),
                "account": ACCOUNT_A,
                "media": ["image", "video"],
                "generate": {"model": "I2V-2.3"},
            },
            {"path": str(plain)},
        ],
    )
    text = render_videos(config, list(plan(config)))
    # a.png and b.png; no end frame (b.end.png, lone.end.png: end frames by name, never videos).
    assert text == (
        f"2 videos would be requested for {shots} (account={ACCOUNT_A}, model I2V-2.3)\n"
        "a dry run uploads nothing and asks for no video: no credits are spent"
    )


def test_more_than_the_day_cap_says_the_rest_wait(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(3):
        (shots / f"{i}.png").write_bytes(png_bytes(i))
    config = config_of(tmp_path, [{"path": str(shots), "generate": {"model": "m", "max_per_day": 2}}])
    text = render_videos(config, list(plan(config)))
    assert text is not None and text.splitlines()[0] == (
        f"3 videos would be requested for {shots} (the token's only account, model m); at most 2 a day "
        "(max_per_day), the rest on the days after"
    )


def test_no_generate_folder_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(png_bytes(1))
    config = config_of(tmp_path, [{"path": str(tmp_path / "d")}])
    assert render_videos(config, list(plan(config))) is None


def test_the_command_prints_the_uploads_then_the_videos(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"folders": [{"path": "shots", "generate": {"model": "m"}}]})
    )
    env = {k: v for k, v in os.environ.items() if k != "MINIMAX_WATCHER_CONFIG"}
    env.update(USEAPI_TOKEN=TOKEN, XDG_STATE_HOME=str(tmp_path / "state"))
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "scan", "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-3:] == [
        "1 file would be uploaded (702 B), 0 not",
        f"1 video would be requested for {shots} (the token's only account, model m)",
        "a dry run uploads nothing and asks for no video: no credits are spent",
    ]
    assert not (shots / "a.png.json").exists() and not (shots / "videos").exists()
