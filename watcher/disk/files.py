"""Opening files and folders below a watched folder: no symlink followed, nothing outside reached (SPEC §7).

A path is reached from the folder's descriptor one component at a time (`O_NOFOLLOW` on a whole path
protects only its last component). A `root` of "" trusts the path as given (the `upload` command, the
state folder). See docs/architecture.md, 'What is trusted'.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from watcher.core.media import looks_complete

# A folder is opened only to look names up in it: O_PATH needs no read permission on it (a drop box
# may be search-only, as a plain open of a path below it would allow too).
_FOLDER_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class NotRegularFileError(OSError):
    """The path names a FIFO, socket, device or directory, not a regular file."""


class OutsideRootError(OSError):
    """The path does not lie below its watched folder, or climbs out of it with `..`."""

    def __init__(self, path: str, root: str) -> None:
        super().__init__(errno.EXDEV, f"not inside the watched folder {root}", path)


def components_below(root: str, path: str) -> list[str]:
    """The names leading from `root` down to `path`; raises `OutsideRootError` when it is not below."""
    prefix = root.rstrip("/") + "/"
    if not root or not path.startswith(prefix):
        raise OutsideRootError(path, root)
    parts = [part for part in path[len(prefix) :].split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise OutsideRootError(path, root)
    return parts


# Watched folders this thread holds open for a while (`holding_roots`), by path; at most this many, so
# a turn that looks into a thousand folders does not hold a thousand descriptors at once.
_held = threading.local()
MAX_HELD_ROOTS = 64


@contextmanager
def holding_roots() -> Iterator[None]:
    """Within the block, this thread opens each watched folder once instead of once per look.

    For the scheduler's looks (reads only) at the files of one loop turn: a burst of 64 files in one
    folder costs one open of that folder, not 64 to 300. The folders below a watched folder are still
    opened afresh, without following a symlink, at every look; only the watched folder itself, which
    is trusted as named, is held, and for no longer than the block.
    """
    if _held_folders() is not None:
        yield  # already held by an enclosing block, which closes them
        return
    held: dict[str, int] = {}
    _held.fds = held
    try:
        yield
    finally:
        _held.fds = None
        for fd in held.values():
            os.close(fd)


def _held_folders() -> dict[str, int] | None:
    folders: dict[str, int] | None = getattr(_held, "fds", None)
    return folders


def _open_root(root: str) -> int:
    held = _held_folders()
    if held is None:
        return os.open(root, _FOLDER_FLAGS)
    fd = held.get(root)
    if fd is None:
        if len(held) >= MAX_HELD_ROOTS:
            return os.open(root, _FOLDER_FLAGS)  # closed after the look, as without the block
        fd = held[root] = os.open(root, _FOLDER_FLAGS)
    return fd


def _close_folder(fd: int) -> None:
    held = _held_folders()
    if held is None or fd not in held.values():
        os.close(fd)


def _open_parent_beneath(root: str, path: str) -> tuple[int, str]:
    """An O_PATH descriptor of the folder holding `path` (closed with `_close_folder`: it may be a
    watched folder that `holding_roots` holds), and `path`'s name in it.

    Below `root`, each folder is opened relative to its parent without following a symlink: a folder
    on the way that is now a symlink raises OSError(ELOOP), one that is now a file ENOTDIR, one that
    is gone ENOENT. The root itself is the configured folder and is opened as named.
    """
    if not root:
        folder, name = os.path.split(path)
        return os.open(folder or ".", _FOLDER_FLAGS), name
    parts = components_below(root, path)
    dir_fd = _open_root(root)
    try:
        for part in parts[:-1]:
            child = open_subfolder(part, dir_fd, path)
            _close_folder(dir_fd)
            dir_fd = child
    except BaseException:
        _close_folder(dir_fd)
        raise
    return dir_fd, parts[-1]


def open_subfolder(name: str, dir_fd: int, path: str, flags: int = _FOLDER_FLAGS) -> int:
    """The folder `name` in the folder `dir_fd`, never through a symlink (`flags` O_PATH by default).

    OSError(ELOOP) when `name` is a symlink, NotADirectoryError when it is something else but a folder,
    FileNotFoundError when it is not there; `path` is what the error names.
    """
    try:
        return os.open(name, flags | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except NotADirectoryError:
        # O_DIRECTORY|O_NOFOLLOW answers ENOTDIR for a symlink too; tell it apart so the
        # caller's "the name is now a symlink" covers every component alike.
        if _is_symlink(name, dir_fd):
            raise OSError(errno.ELOOP, "a folder on the way is a symlink", path) from None
        raise


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


@contextmanager
def parent_beneath(root: str, path: str) -> Iterator[tuple[int, str]]:
    """`_open_parent_beneath` as a context: the folder's descriptor is closed on leaving."""
    dir_fd, name = _open_parent_beneath(root, path)
    try:
        yield dir_fd, name
    finally:
        _close_folder(dir_fd)


@contextmanager
def made_folder(root: str, folder: str, mode: int = 0o775) -> Iterator[int]:
    """An O_PATH descriptor of `folder` (`root` itself, or a folder below it), each missing folder below
    `root` made on the way (mkdirat) and each opened without following a symlink (`open_subfolder`:
    OSError ELOOP names `folder`). `root` is opened as named and must exist."""
    dir_fd = _open_root(root)
    try:
        for part in [] if folder == root else components_below(root, folder):
            try:
                os.mkdir(part, mode, dir_fd=dir_fd)
            except FileExistsError:
                pass  # a folder already, or something else: open_subfolder tells
            child = open_subfolder(part, dir_fd, folder)
            _close_folder(dir_fd)
            dir_fd = child
        yield dir_fd
    finally:
        _close_folder(dir_fd)


def open_beneath(root: str, path: str, flags: int, mode: int = 0o777) -> int:
    """`os.open(path, flags)` with no symlink followed anywhere below `root` (the last name included)."""
    with parent_beneath(root, path) as (dir_fd, name):
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)


def open_directory(root: str, folder: str) -> int:
    """A descriptor to list `folder` (the caller closes it), reached from `root` without following a
    symlink: a subfolder swapped for a link lists nothing outside the watched folder."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if folder == root:
        return os.open(root, flags)  # the configured folder itself: the one path trusted as given
    return open_beneath(root, folder, flags)


def lstat_beneath(root: str, path: str) -> os.stat_result:
    """The stat of `path` itself (not a symlink's target), reached from `root` without following one."""
    with parent_beneath(root, path) as (dir_fd, name):
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def open_regular_file(path: str, root: str = "") -> int:
    """Open `path` for reading without following a symlink and without blocking on a FIFO.

    Returns the descriptor; raises OSError (ELOOP when the name or a folder below `root` is a
    symlink), or `NotRegularFileError` when the name now points at something other than a regular
    file (it may have been swapped since the last stat).
    """
    return open_regular_file_and_stat(path, root)[0]


def open_regular_file_and_stat(
    path: str, root: str = "", *, blocking: bool = True
) -> tuple[int, os.stat_result]:
    """`open_regular_file`, and the descriptor's stat taken to check it (no second fstat needed).

    `blocking=False` leaves the descriptor O_NONBLOCK, which a regular file ignores on Linux's own
    filesystems: one system call less for a look of a few bytes whose reader treats any OSError as
    "not yet" (a filesystem that did answer EAGAIN would only cost the file its short settle).
    """
    fd = open_beneath(root, path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path)
        if blocking:
            # Back to blocking reads for a regular file: O_NONBLOCK only mattered for the open itself.
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def looks_complete_on_disk(path: str, size: int, root: str = "") -> bool:
    """Whether the file at `path` is still `size` bytes long and its own structure says it is whole
    (`media.looks_complete`), read at the offsets its format needs through one descriptor.

    Raises OSError as `open_regular_file` does.
    """
    fd, st = open_regular_file_and_stat(path, root, blocking=False)
    try:
        if st.st_size != size:
            return False  # written to since it was looked at: the next look decides
        return looks_complete(lambda offset, length: os.pread(fd, length, offset), size)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """`os.write` until every byte is written (a write may take fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_folder(folder: str | os.PathLike[str] = ".", dir_fd: int | None = None) -> None:
    """fsync a folder, so the names just made or removed in it survive a power cut; best effort.

    With `dir_fd` (which may be an O_PATH descriptor, which fsync itself refuses) `folder` is relative to it.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
