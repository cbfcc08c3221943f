"""`on_video` in a folder with `done_dir`: the image moves once its video has ended, and the hook is
told where the image is now (as `on_upload` is), not where it was before the move."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.test_hooks import recorder, runs
from tests.helpers import ACCOUNT_A, wait_for
from tests.helpers.images import png_bytes


def test_on_video_names_the_image_in_done_dir_after_the_move(start_agent, tmp_path: Path, drop: Path) -> None:
    program, out = recorder(tmp_path)
    start_agent(
        [
            {
                "path": str(drop),
                "account": ACCOUNT_A,
                "done_dir": "done",
                "generate": {"model": "I2V-2.3", "poll_seconds": 1},
            }
        ],
        hooks={"on_video": [str(program)]},
    )
    (drop / "cat.png").write_bytes(png_bytes(4244))

    [run] = wait_for(lambda: runs(out, "video"), 60, "the on_video hook")
    env = run["env"]
    assert env["MINIMAX_VIDEO"] == str(drop / "videos" / "cat.mp4")
    assert env["MINIMAX_FILE"] == str(drop / "done" / "cat.png")
    assert os.path.exists(env["MINIMAX_FILE"]) and not (drop / "cat.png").exists()
