"""os.fwalk without its recursion: a folder tree walked from a descriptor, never through a symlink, one
descriptor a level and at most `max_depth` levels (a dropper's chain of folders ended os.fwalk, which
recurses, in a RecursionError)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from watcher.disk.files import open_subfolder


class Level(NamedTuple):
    path: str  # joined to the walk's top ("." for the top itself)
    dirs: list[str]  # its subfolders (and links to folders, never entered): remove names not to enter
    files: list[str]  # everything else
    fd: int  # open while the caller looks at this level
    deepest: bool  # at `max_depth`: its dirs are not entered


def walk(top: str, top_fd: int, max_depth: int) -> Iterator[Level]:
    """Each folder at or below the folder `top_fd` (named `top` in the paths), top-down and depth first,
    like os.fwalk(follow_symlinks=False); `top_fd` stays the caller's."""
    stack: list[tuple[str, int, list[str]]] = []  # (path, descriptor, subfolders still to enter)
    try:
        path, fd = top, top_fd
        while True:
            level = _level(path, fd, deepest=len(stack) >= max_depth)
            stack.append((path, fd, []))
            yield level
            if not level.deepest:
                stack[-1] = (path, fd, sorted(level.dirs, reverse=True))
            fd = -1
            while fd == -1:
                while stack and not stack[-1][2]:
                    _, done, _ = stack.pop()
                    if done != top_fd:
                        os.close(done)
                if not stack:
                    return
                parent, parent_fd, pending = stack[-1]
                name = pending.pop()
                path = os.path.join(parent, name)
                try:
                    fd = open_subfolder(name, parent_fd, path, os.O_RDONLY)
                except OSError:
                    fd = -1  # a link to a folder, or gone since it was listed
    finally:
        for _, fd, _ in stack:
            if fd != top_fd:
                os.close(fd)


def _level(path: str, fd: int, *, deepest: bool) -> Level:
    dirs: list[str] = []
    files: list[str] = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    (dirs if entry.is_dir() else files).append(entry.name)
                except OSError:
                    files.append(entry.name)
    except OSError:
        pass  # removed or unreadable meanwhile: what was listed is kept
    return Level(path, dirs, files, fd, deepest)
