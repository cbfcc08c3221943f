"""`scan --dry-run` lists every name in a drop folder, and droppers choose those names and links: the
listing never follows a link out of the folder, and never prints a name's control characters raw."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ACCOUNT_A
from tests.helpers.images import png_bytes
from tests.helpers.maze import make_chain, peel


def dry_run(tmp_path: Path, drop: Path) -> subprocess.CompletedProcess[bytes]:
    folder = {"path": str(drop), "account": ACCOUNT_A, "recursive": True}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"folders": [folder]}))
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    argv = [sys.executable, "-m", "watcher", "scan", "--dry-run", "--config", str(tmp_path / "config.yaml")]
    return subprocess.run(argv, env=env, capture_output=True, timeout=60)


def test_a_link_to_a_folder_outside_is_named_never_walked(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    (secret / "deeper").mkdir(parents=True)
    (secret / "payroll.txt").write_text("salaries")
    (secret / "deeper" / "plan.png").write_bytes(png_bytes(1))
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "innocent").symlink_to(secret)
    result = dry_run(tmp_path, drop)
    assert result.returncode == 0, result.stderr
    assert b"payroll" not in result.stdout and b"plan.png" not in result.stdout
    assert (
        f"{drop / 'innocent'}/\t-\t0\t{ACCOUNT_A}\tnot uploaded: a symlink to a folder: never followed".encode()
        in (result.stdout.splitlines())
    )


def test_names_with_terminal_controls_are_listed_escaped(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "evil\x1b]0;owned\x07.txt").write_text("x")
    (drop / "dir\x1b[2J").mkdir()
    (drop / "dir\x1b[2J" / "note\x9b.md").write_text("x")
    result = dry_run(tmp_path, drop)
    assert result.returncode == 0, result.stderr
    assert (
        b"\x1b" not in result.stdout and b"\x07" not in result.stdout and "\x9b".encode() not in result.stdout
    )
    assert b"evil\\x1b]0;owned\\x07.txt" in result.stdout and b"note\\x9b.md" in result.stdout


def test_a_chain_of_folders_deeper_than_python_recurses_is_listed_to_a_depth(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    make_chain(drop, 1100, ("deep.txt",))
    try:
        result = dry_run(tmp_path, drop)
    finally:
        peel(drop)
    assert result.returncode == 0, result.stderr[-500:]
    assert b"Traceback" not in result.stderr
    assert b"more than 256 folders deep: not looked into by this listing" in result.stdout
