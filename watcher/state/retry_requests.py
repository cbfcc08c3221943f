"""`minimax-watcher retry`'s requests to the agent: one file each in `<state>/retry/`, written atomically
by the command (`ask`), read and deleted by the running agent or the next one to start (`take`).

The state folder is the operator's, never a dropper's; still, a file there that is not a request is
skipped with one warning and removed, and what is read is bounded.
"""

from __future__ import annotations

import errno
import heapq
import json
import logging
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.disk.files import fsync_folder, write_all
from watcher.disk.records import utc_now_iso

log = logging.getLogger(__name__)

RETRY_DIR = "retry"
MAX_TAKEN = 100  # files taken per call; the rest wait for the next (the agent asks every second)
MAX_REQUEST_BYTES = 1 << 20
STALE_TEMPORARY_SECONDS = 3600.0  # a `.…tmp` of an `ask` that died before its rename


@dataclass(frozen=True)
class RetryRequest:
    paths: tuple[str, ...]  # absolute
    failed: bool  # --failed
    folder: str | None  # --folder


def ask(state_dir: Path, request: RetryRequest) -> Path:
    """Write `request` as a new file in `<state>/retry/` (mode 0600, temporary name, fsync, rename) and
    return its path. Run as root for a service's state folder, the folder and file are given to the
    state folder's owner, so that the agent can read and delete them. Raises OSError."""
    payload = json.dumps(
        {
            "paths": list(request.paths),
            "failed": request.failed,
            "folder": request.folder,
            "askedAt": utc_now_iso(),
        },
        ensure_ascii=True,  # a name that is not UTF-8 travels as \udcXX escapes and comes back the same
    ).encode()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    owner = os.stat(state_dir)
    dir_fd = _open_retry_dir(state_dir, create=True, owner=owner)
    try:
        # Names sort by time: `take` reads the oldest first.
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.json"
        tmp = f".{name}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
        )
        try:
            try:
                write_all(fd, payload)
                _give_to(fd, owner)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        fsync_folder(".", dir_fd)
    finally:
        os.close(dir_fd)
    return state_dir / RETRY_DIR / name


def take(state_dir: Path) -> list[RetryRequest]:
    """The requests waiting in `<state>/retry/`, oldest first (at most `MAX_TAKEN`), each file deleted
    as it is taken. A file that is not a valid request is skipped with one warning and removed; one
    that cannot be removed is not taken (it would be taken again at every call)."""
    try:
        dir_fd = _open_retry_dir(state_dir, create=False)
    except FileNotFoundError:
        return []
    except OSError as exc:
        _warn_once(state_dir, "", "cannot read the retry requests in %s (%s); they wait", exc)
        return []
    taken: list[RetryRequest] = []
    try:
        for name in _oldest_names(dir_fd):
            request, problem = _read(dir_fd, name)
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # taken by another reader meanwhile
            except OSError as exc:
                _warn_once(
                    state_dir, name, "cannot remove the retry request %s (%s); it is not acted on", exc
                )
                continue
            if request is not None:
                taken.append(request)
            else:
                _warn_once(state_dir, name, "%s is not a retry request (%s); removed", problem)
    finally:
        os.close(dir_fd)
    return taken


def _open_retry_dir(state_dir: Path, *, create: bool, owner: os.stat_result | None = None) -> int:
    """The retry folder's descriptor, never through a symlink."""
    path = state_dir / RETRY_DIR
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        else:
            if owner is not None:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    _give_to(fd, owner)
                finally:
                    os.close(fd)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _give_to(fd: int, owner: os.stat_result) -> None:
    """Root writing into a service's state folder: the file belongs to the folder's owner."""
    if os.geteuid() == 0 and owner.st_uid != 0:
        os.fchown(fd, owner.st_uid, owner.st_gid)


def _oldest_names(dir_fd: int) -> list[str]:
    """The `MAX_TAKEN` first names in order (requests sort by time), without holding every name of a
    folder someone filled; stale temporaries are removed on the way."""
    names = []
    now = time.time()
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                if entry.name.endswith(".tmp"):
                    _remove_if_stale(dir_fd, entry, now)
                continue
            names.append(entry.name)
            if len(names) > 4 * MAX_TAKEN:
                names = heapq.nsmallest(MAX_TAKEN, names)
    return heapq.nsmallest(MAX_TAKEN, names)


def _remove_if_stale(dir_fd: int, entry: os.DirEntry[str], now: float) -> None:
    try:
        if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_SECONDS:
            os.unlink(entry.name, dir_fd=dir_fd)
    except OSError:
        pass


def _read(dir_fd: int, name: str) -> tuple[RetryRequest | None, str]:
    """The request in `name`, or None and why not."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        return None, "a symlink" if exc.errno == errno.ELOOP else (exc.strerror or type(exc).__name__)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_size > MAX_REQUEST_BYTES:
            return None, f"larger than {MAX_REQUEST_BYTES >> 20} MiB"
        raw = os.read(fd, MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    finally:
        os.close(fd)
    if len(raw) > MAX_REQUEST_BYTES:
        return None, f"larger than {MAX_REQUEST_BYTES >> 20} MiB"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None, "not JSON"
    return _request_of(data)


def _request_of(data: Any) -> tuple[RetryRequest | None, str]:
    if not isinstance(data, dict):
        return None, "not a JSON object"
    paths, failed, folder = data.get("paths"), data.get("failed"), data.get("folder")
    if not isinstance(paths, list) or not all(_absolute(p) for p in paths):
        return None, "paths is not a list of absolute paths"
    if not isinstance(failed, bool):
        return None, "failed is not true or false"
    if folder is not None and not _absolute(folder):
        return None, "folder is not an absolute path"
    if not paths and not failed:
        return None, "it asks for nothing"
    return RetryRequest(tuple(os.path.normpath(p) for p in paths), failed, folder), ""


def _absolute(path: Any) -> bool:
    return isinstance(path, str) and path.startswith("/") and "\0" not in path


# What has been warned about, so a file that stays (it cannot be removed) is told of once, not every
# second; bounded, so a folder filled with bad names cannot grow it without end.
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
MAX_WARNED = 1000


def _warn_once(state_dir: Path, name: str, message: str, detail: object) -> None:
    key = (str(state_dir), name)
    with _warned_lock:
        if key in _warned:
            return
        if len(_warned) >= MAX_WARNED:
            _warned.clear()
        _warned.add(key)
    where = state_dir / RETRY_DIR / name if name else state_dir / RETRY_DIR
    reason = detail.strerror if isinstance(detail, OSError) and detail.strerror else detail
    log.warning(message, where, reason)
