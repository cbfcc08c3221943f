"""A dropper's chain of folders `d/d/d/...` deeper than PATH_MAX and Python's recursion limit, made and
removed one level at a time (pytest's own clean-up, shutil.rmtree, recurses and would fail on it)."""

from __future__ import annotations

import os
from pathlib import Path


def make_chain(top: Path, depth: int, files: tuple[str, ...] = ()) -> None:
    """`depth` folders named `d` below `top`, the empty `files` in the deepest."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        for name in files:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def peel(top: Path) -> None:
    """Remove the chain below `top`, its top folder at a time."""
    while (top / "d").is_dir():
        inner = top / "d"
        for name in os.listdir(inner):
            if name != "d":
                os.unlink(inner / name)
        if (inner / "d").is_dir():
            os.rename(inner / "d", top / "next")
        os.rmdir(inner)
        if (top / "next").is_dir():
            os.rename(top / "next", top / "d")
