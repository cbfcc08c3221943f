"""`scan --dry-run`: what would be uploaded, and why not the rest; nothing uploaded, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes
from watcher.core.wording import size
from watcher.emulator import Emulator


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_dry_run_lists_path_type_size_account_and_changes_nothing(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    (drop / "a.png").write_bytes(png_bytes(8001))
    (drop / "sub" / "b.png").write_bytes(png_bytes(8002))
    (drop / "notes.png").write_text("a text file named .png")
    (drop / "skipped.mp3").write_bytes(b"ID3")  # audio is not in this folder's media: not a candidate
    config = {
        "api": {"base_url": emulator.base_url},
        "folders": [{"path": str(drop), "account": ACCOUNT_A, "recursive": True}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "USEAPI_TOKEN"}  # no token needed
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "scan", "--dry-run", "--config", str(tmp_path / "config.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"{drop / 'a.png'}\timage/png\t{len(png_bytes(8001))}\t{ACCOUNT_A}" in lines
    assert f"{drop / 'sub' / 'b.png'}\timage/png\t{len(png_bytes(8002))}\t{ACCOUNT_A}" in lines
    [refused] = [line for line in lines if line.startswith(str(drop / "notes.png"))]
    assert "not uploaded: not a PNG, JPEG or WebP image" in refused
    [skipped] = [line for line in lines if line.startswith(str(drop / "skipped.mp3"))]
    assert skipped.endswith("\tnot uploaded: not of the folder's media (image: .png .jpg .jpeg .webp)")
    assert lines[-1] == (
        f"2 files would be uploaded ({size(len(png_bytes(8001)) + len(png_bytes(8002)))}), 2 not: 1 refused, "
        "1 not of the folder's media"
    )
    assert snapshot(tmp_path) == before, "a dry run wrote something"
    assert emulator.requests == []
