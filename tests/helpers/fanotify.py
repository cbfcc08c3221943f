"""Hold a process at the moment it opens something in a folder: fanotify permission events (root only).

`OpenGate(folder, decide)` marks `folder` (the folder itself and the files in it); every open there
waits until `decide(pid, path)` has been called for it on the gate's thread. That turns "kill it right
after it wrote X" into a condition instead of a race: the process is stopped in the kernel, at its
next open, until the test has looked and acted (`decide` may kill it). Opens go on once the gate is
closed.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

FAN_CLOEXEC = 0x1
FAN_CLASS_CONTENT = 0x4
FAN_MARK_ADD = 0x1
FAN_OPEN_PERM = 0x10000
FAN_ONDIR = 0x40000000
FAN_EVENT_ON_CHILD = 0x08000000
FAN_ALLOW = 0x1
AT_FDCWD = -100
_METADATA = struct.Struct("IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_RESPONSE = struct.Struct("iI")  # fd, response


class OpenGate:
    def __init__(self, folder: Path, decide: Callable[[int, str], None]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fanotify_mark.argtypes = [
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_char_p,
        ]
        fd = libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, os.O_RDONLY | os.O_LARGEFILE)
        if fd < 0:
            pytest.skip(
                f"fanotify permission events are not available here: {os.strerror(ctypes.get_errno())}"
            )
        mask = FAN_OPEN_PERM | FAN_ONDIR | FAN_EVENT_ON_CHILD
        if libc.fanotify_mark(fd, FAN_MARK_ADD, mask, AT_FDCWD, os.fsencode(folder)) != 0:
            error = ctypes.get_errno()
            os.close(fd)
            pytest.skip(f"cannot mark {folder} for fanotify: {os.strerror(error)}")
        self._fd = fd
        self._decide = decide
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="open-gate", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop gating: the thread ends, and opens waiting on it go on (closing the group allows them)."""
        os.write(self._stop_w, b"x")
        self._thread.join(10)
        assert not self._thread.is_alive(), "the fanotify gate thread did not stop"
        os.close(self._fd)
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            buffer = os.read(self._fd, 4096)
            offset = 0
            while offset + _METADATA.size <= len(buffer):
                length, _, _, _, _, event_fd, pid = _METADATA.unpack_from(buffer, offset)
                offset += length
                try:
                    path = os.readlink(f"/proc/self/fd/{event_fd}")
                    self._decide(pid, path)
                finally:
                    os.write(self._fd, _RESPONSE.pack(event_fd, FAN_ALLOW))
                    os.close(event_fd)
