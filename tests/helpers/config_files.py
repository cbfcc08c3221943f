"""Config and token files as an operator writes them, for the config unit tests."""

from __future__ import annotations

import os
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
