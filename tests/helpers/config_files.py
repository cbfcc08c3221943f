"""Config and token files as an operator writes them, for the config unit tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def write_config(folder: Path, text: str, name: str = "config.yaml", mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def write_token(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    """A token file as the README says to make one: readable by its owner alone."""
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    os.chmod(path, mode)
    return path


def check_config_alone(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`minimax-watcher check-config ARGS` run in `folder`, where there is no ./config.yaml, without
    $MINIMAX_WATCHER_CONFIG or a token: what a command that needs no config prints."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIMAX_WATCHER_CONFIG", "USEAPI_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "watcher", "check-config", *args],
        cwd=folder,  # /etc/minimax-watcher/config.yaml is not read either: these commands read none
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
