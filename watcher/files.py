"""Files as the agent sees them: one version's identity (`FileSignature`) and opening one safely.

Every read of a dropped file goes through `open_regular_file`: no symlink is followed, a FIFO named
`x.png` never blocks, and what was opened is checked to be a regular file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from watcher.media import SNIFF_BYTES, TAIL_BYTES


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What identifies one version of a file's bytes without reading them."""

    size: int
    mtime_ns: int
    ino: int = 0


def signature_of(st: os.stat_result) -> FileSignature:
    return FileSignature(st.st_size, st.st_mtime_ns, st.st_ino)


def is_regular_file_mode(mode: int) -> bool:
    """Regular files only: symlinks, directories, FIFOs, sockets and devices are never candidates."""
    return stat.S_ISREG(mode)


class NotRegularFileError(OSError):
    """The path names a FIFO, socket, device or directory, not a regular file."""


def open_regular_file(path: str) -> int:
    """Open `path` for reading without following a symlink and without blocking on a FIFO.

    Returns the descriptor; raises OSError, or `NotRegularFileError` when the name now points at
    something other than a regular file (it may have been swapped since the last stat).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path)
        # Back to blocking reads for a regular file: O_NONBLOCK only mattered for the open itself.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_head_and_tail(path: str) -> tuple[bytes, bytes, os.stat_result]:
    """First bytes, last bytes and the stat of the open file, in one open."""
    fd = open_regular_file(path)
    try:
        st = os.fstat(fd)
        head = os.pread(fd, SNIFF_BYTES, 0)
        tail = os.pread(fd, TAIL_BYTES, max(0, st.st_size - TAIL_BYTES)) if st.st_size else b""
        return head, tail, st
    finally:
        os.close(fd)
