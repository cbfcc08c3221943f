"""A dropper's deep tree against globs with several `**` (issue 21, N14): matching runs in linear time.

A backtracking regex took time growing with the depth to the power of the number of `**` (1.6 s for four
of them on 200 folders, far longer for six), holding the whole agent still meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, sidecar_of, wait_sidecar
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile

MANY_STARS = "**/a/**/a/**/a/**/a/**/a/**/b/*.png"
DEPTH = 200


def test_a_deep_path_against_many_stars_is_matched_in_steps_bounded_by_their_product() -> None:
    # In a child process: a regex engine holds the interpreter for as long as it backtracks, so only a
    # process can be given up on. The deadline is a guard against a hang, not a measure.
    program = textwrap.dedent(
        f"""
        from watcher.core.folders import Folder
        from watcher.core.globs import Glob
        deep = "a/" * {DEPTH} + "c.png"
        folder = Folder("/d", None, True, False, include=({MANY_STARS!r},))
        assert not folder.admits("/d/" + deep)
        assert folder.admits("/d/" + deep[:-5] + "b/c.png")
        glob = Glob({MANY_STARS!r})
        matched, steps = glob.run(deep)
        assert not matched and steps <= (len(deep) + 1) * glob.size, (steps, glob.size)
        print("ok")
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"matching {MANY_STARS} against a path {DEPTH} folders deep ran past 60 s")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_deep_tree_does_not_hold_up_the_agent(start_agent, drop: Path, emulator: Emulator) -> None:
    start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "recursive": True, "include": [MANY_STARS, "top/*.png"]}]
    )
    deep = drop.joinpath(*["a"] * DEPTH)
    deep.mkdir(parents=True)
    (deep / "c.png").write_bytes(png_bytes(9601))
    (drop / "top").mkdir()
    top = drop / "top" / "ok.png"
    top.write_bytes(png_bytes(9602))
    wait_sidecar(top, timeout=30)
    assert not sidecar_of(deep / "c.png").exists()
