"""Watching for sidecars with inotify (ctypes; no extra dependency)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct("iIII")


class SidecarWatch:
    """Records when each `<image>.json` appears (renamed into place, or closed after writing).

    Timestamps are taken by a thread blocked on the inotify descriptor, so they are within a scheduler
    tick of the event. On a queue overflow the folders are listed and what is there counts as seen now.
    """

    MASK = IN_CLOSE_WRITE | IN_MOVED_TO

    def __init__(self, folders: list[Path]) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.folders: dict[int, str] = {}
        for folder in folders:
            wd = _libc.inotify_add_watch(self.fd, str(folder).encode(), self.MASK)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
            self.folders[wd] = str(folder)
        self.seen: dict[str, float] = {}
        self.errors: dict[str, float] = {}
        self.overflows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _note(self, folder: str, name: str, now: float) -> None:
        if name.startswith(".") or not name.endswith(".json"):
            return
        if name.endswith(".error.json"):
            self.errors.setdefault(os.path.join(folder, name[: -len(".error.json")]), now)
        else:
            self.seen.setdefault(os.path.join(folder, name[: -len(".json")]), now)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._stop:
            if not poller.poll(100):
                continue
            now = time.monotonic()
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            with self._cond:
                offset = 0
                while offset < len(data):
                    wd, mask, _, length = _EVENT.unpack_from(data, offset)
                    raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                    offset += _EVENT.size + length
                    if mask & IN_Q_OVERFLOW:
                        self.overflows += 1
                        for folder in self.folders.values():
                            for name in os.listdir(folder):
                                self._note(folder, name, now)
                        continue
                    watched = self.folders.get(wd)
                    if watched is not None:
                        self._note(watched, raw.rstrip(b"\0").decode(errors="surrogateescape"), now)
                self._cond.notify_all()

    def wait(self, images: list[str], timeout: float) -> dict[str, float]:
        """Block until every image has a sidecar; returns image -> monotonic time it appeared."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [p for p in images if p not in self.seen]
                if not missing:
                    return {p: self.seen[p] for p in images}
                failed = [p for p in missing if p in self.errors]
                if failed:
                    raise RuntimeError(f"{len(failed)} file(s) got an error record, e.g. {failed[0]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(missing)} of {len(images)} sidecars missing after {timeout:.0f} s, "
                        f"e.g. {missing[0]}"
                    )
                self._cond.wait(min(left, 1.0))

    def close(self) -> None:
        if self._stop:
            return
        self._stop = True
        self._thread.join(2)
        os.close(self.fd)

    def __enter__(self) -> SidecarWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


IN_CREATE = 0x00000100


class Mp4Watch(SidecarWatch):
    """Records when each `*.mp4` appears in the folders (the agent links a fsynced temporary file to its
    final name, an IN_CREATE; a rename would be IN_MOVED_TO). `seen` maps the MP4's path to the time."""

    MASK = IN_CREATE | IN_MOVED_TO

    def _note(self, folder: str, name: str, now: float) -> None:
        if not name.startswith(".") and name.endswith(".mp4"):
            self.seen.setdefault(os.path.join(folder, name), now)

    def wait_count(self, count: int, timeout: float) -> dict[str, float]:
        """Block until `count` MP4s have appeared; returns path -> monotonic time it appeared."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.seen) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.seen)} of {count} MP4s after {timeout:.0f} s")
                self._cond.wait(min(left, 1.0))
            return dict(self.seen)
