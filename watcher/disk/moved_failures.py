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
from watcher.disk.files import open_directory
from watcher.disk.records import read_record
from watcher.disk.walk import walk

# failed_dir mirrors the drop folder's layout; below this many levels is a dropper's maze, not walked.
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
        for level in walk(".", top, MAX_DEPTH):
            level.dirs[:] = [d for d in level.dirs if not d.startswith(".")]  # as in the drop folder
            directory, files, dir_fd = level.path, level.files, level.fd
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


def _is_regular(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
