"""Without a token, every command that needs one says so the same way: each place it looks, and --emulate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.images import png_bytes


def test_scan_and_upload_say_the_same_line_naming_every_place_a_token_may_be(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(png_bytes(1))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"folders": [{"path": "drop"}]}))
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), CREDENTIALS_DIRECTORY=str(tmp_path / "none"))
    said = []
    for command in (["scan"], ["upload", "drop/a.png"]):
        result = subprocess.run(
            [sys.executable, "-m", "watcher", *command], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 78, result.stderr
        said.append(next(line for line in result.stderr.splitlines() if "no API token:" in line))
    tails = [line.partition("no API token:")[2] for line in said]
    assert tails[0] == tails[1]
    assert all(
        where in tails[0] for where in ("$USEAPI_TOKEN", "api.token_file", "api.token ", "useapi-token")
    )
    assert "--emulate" in tails[0]
