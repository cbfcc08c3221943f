"""The failures a folder's `failed_dir` holds: each file there with its error record beside it.

Moved failures still need someone, so `status` lists them and the metrics count them. failed_dir may lie
inside the drop folder, where droppers write: it is reached and walked without following a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

from watcher.core.folders import Folder, is_inside
from watcher.core.media import ERROR_RECORD_SUFFIX
from watcher.disk.files import open_directory, open_subfolder
from watcher.disk.records import read_record

# failed_dir mirrors the drop folder's layout; below this many levels it is a dropper's maze, not walked.
MAX_DEPTH = 64


def moved_failures(folder: Folder, *, read: bool = False) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each file in `folder`'s failed_dir that has its error record beside it: its path, and (with
    `read`) that record (None when it cannot be read). Nothing when failed_dir is unset or missing."""
    failed_dir = folder.failed_dir
    if failed_dir is None:
        return
    # Reached from the drop folder when inside it (its names are droppers'), else as the operator named it.
    base = folder.path if is_inside(failed_dir, folder.path) else os.path.dirname(failed_dir.rstrip("/"))
    try:
        top = open_directory(base, failed_dir)
    except OSError:
        return  # no failure was moved yet, or it is not a plain folder: nothing of ours is there
    try:
        for directory, files, dir_fd in _folders(top):
            names = set(files)
            for name in sorted(files):
                image = name.removesuffix(ERROR_RECORD_SUFFIX)
                if (
                    name.startswith(".")
                    or image == name
                    or image not in names
                    or not _is_regular(image, dir_fd)
                ):
                    continue
                path = os.path.normpath(os.path.join(failed_dir, directory, image))
                yield path, read_record(name, dir_fd=dir_fd) if read else None
    finally:
        os.close(top)


def _folders(top: int) -> Iterator[tuple[str, list[str], int]]:
    """(path relative to `top`, names of what is not a folder, its descriptor) of `top` and each folder
    below it down to MAX_DEPTH, depth first, without recursion or following a symlink: one descriptor
    per level (os.fwalk recurses: a dropper's chain of folders ended it in a RecursionError)."""
    stack: list[tuple[str, int, list[str]]] = []  # (path, descriptor, subfolders still to enter)
    try:
        path, fd = ".", top
        while True:
            files, folders = _listing(fd)
            stack.append((path, fd, folders if len(stack) < MAX_DEPTH else []))
            yield path, files, fd
            fd = -1
            while fd == -1:
                while stack and not stack[-1][2]:
                    _, done, _ = stack.pop()
                    if done != top:
                        os.close(done)
                if not stack:
                    return
                parent, parent_fd, pending = stack[-1]
                name = pending.pop()
                path = os.path.join(parent, name)
                try:
                    fd = open_subfolder(name, parent_fd, path, os.O_RDONLY)
                except OSError:
                    fd = -1  # gone, or swapped for a symlink since it was listed
    finally:
        for _, fd, _ in stack:
            if fd != top:
                os.close(fd)


def _listing(fd: int) -> tuple[list[str], list[str]]:
    """The names in the folder `fd`: not folders, and folders to enter (not hidden ones, as in the drop
    folder), the latter in reverse order (popped)."""
    files: list[str] = []
    folders: list[str] = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    files.append(entry.name)
                elif not entry.name.startswith("."):
                    folders.append(entry.name)
    except OSError:
        pass  # removed while walked: what was listed is kept
    return files, sorted(folders, reverse=True)


def _is_regular(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
