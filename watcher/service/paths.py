"""The paths `service install` changes as root, reached without following a symlink (THREAT_MODEL rule 1).

A user who can rename a folder on the way could swap in `alice -> /etc`: a path is walked from `/` one
component at a time, a folder where others may rename is refused, and changes are made on descriptors.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from watcher.disk.files import open_subfolder
from watcher.service.units import PlanError

Names = Callable[[os.stat_result], str]  # "user:group" of a stat, for the messages
_PATH = os.O_PATH  # walking needs only search rights: a dry run need not be root
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def who_can_rename(folder: os.stat_result, entry_uid: int, names: Names) -> str | None:
    """Who besides root could rename an entry owned by `entry_uid` out of `folder`; None: no one."""
    user, group = names(folder).split(":", 1)
    if folder.st_uid != 0:
        return f"its owner {user}"
    if folder.st_mode & stat.S_IWOTH:
        writers = "every user"
    elif folder.st_mode & stat.S_IWGRP and folder.st_gid != 0:  # the group root: root's own, by convention
        writers = f"the group {group}"
    else:
        return None
    if folder.st_mode & stat.S_ISVTX:  # sticky: only the entry's owner, besides the folder's (root)
        return None if entry_uid == 0 else f"uid {entry_uid}, which owns it,"
    return writers


def _refuse_renamable(parent: int, entry_uid: int, shown: str, path: str, names: Names) -> None:
    st = os.fstat(parent)
    who = who_can_rename(st, entry_uid, names)
    if who is not None:
        folder = os.path.dirname(shown)
        raise PlanError(
            f"refusing {path}: {folder} ({names(st)} {stat.S_IMODE(st.st_mode):04o}) lets {who} rename "
            f"{shown} away and put a symlink in its place, which root would then change; make {folder} "
            "root's and writable by root alone (or sticky), then run service install again"
        )


def _symlink(path: str, link: str) -> PlanError:
    return PlanError(
        f"refusing {path}: {link} is a symlink, and service install changes nothing through a link "
        "(whoever can write the folder holding it may have put it there); remove it, or name the real path"
    )


def _parts(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not path.startswith("/") or not parts or ".." in parts:
        raise PlanError(f"{path}: not an absolute path without '..'")
    return parts


@contextmanager
def parent_of(
    root: str, path: str, names: Names, *, create: bool = False
) -> Iterator[tuple[int, str] | None]:
    """An O_PATH descriptor of the folder holding `path` (a path on the machine whose root is `root`),
    and `path`'s last name; None when a folder on the way is missing, or with `create`, made (root's,
    0755). Each folder on the way is checked as `entry` checks it."""
    parts = _parts(path)
    fd = os.open(root, _PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the root itself is trusted as named
    try:
        for i, part in enumerate(parts[:-1]):
            shown = "/" + "/".join(parts[: i + 1])
            st = entry(fd, part, shown, path, names)
            if st is None and not create:
                yield None
                return
            if st is None:
                _make_folder(fd, part, shown)
            elif not stat.S_ISDIR(st.st_mode):
                raise PlanError(f"refusing {path}: {shown} is not a folder")
            child = open_subfolder(part, fd, shown)  # ELOOP if a link was put there since
            os.close(fd)
            fd = child
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _make_folder(parent: int, name: str, shown: str) -> None:
    os.mkdir(name, 0o755, dir_fd=parent)
    fd = open_subfolder(name, parent, shown, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o755)  # whatever the umask: the service must be able to pass through
    finally:
        os.close(fd)


def entry(
    parent: int, name: str, shown: str, path: str, names: Names, *, link_ok: bool = False
) -> os.stat_result | None:
    """The stat of `name` (`shown` in full) in `parent`, not of a link's target; None when absent.

    Refuses (PlanError, about `path`, the change it is on the way to) a parent that lets another user
    than root rename it, and a symlink (unless `link_ok`: removing a link does nothing through it).
    """
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    _refuse_renamable(parent, 0 if st is None else st.st_uid, shown, path, names)
    if st is not None and stat.S_ISLNK(st.st_mode) and not link_ok:
        raise _symlink(path, shown)
    return st


@contextmanager
def refused_links(path: str) -> Iterator[None]:
    """OSError(ELOOP) from a walk or a no-follow open, a link put there since it was looked at, as a refusal."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        shown = exc.filename if isinstance(exc.filename, str) and exc.filename.startswith("/") else path
        raise _symlink(path, shown) from None


def look(root: str, path: str, names: Names, *, link_ok: bool = False) -> os.stat_result | None:
    """The stat of `path` as `entry` gives it; None when it, or a folder on the way, does not exist."""
    with refused_links(path), parent_of(root, path, names) as found:
        return None if found is None else entry(*found, path, path, names, link_ok=link_ok)


def open_file(parent: int, name: str, flags: int = os.O_RDONLY) -> int:
    """A regular file in `parent`, opened without following a link or blocking on a FIFO."""
    fd = os.open(name, flags | os.O_NONBLOCK | _NOFOLLOW, dir_fd=parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PlanError(f"{name} is not a regular file")
    return fd


def read_file(root: str, path: str, names: Names) -> bytes | None:
    """The content of the regular file `path`, None when it does not exist."""
    with refused_links(path), parent_of(root, path, names) as found:
        if found is None or entry(*found, path, path, names) is None:
            return None
        fd = open_file(*found)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)


def open_folder(parent: int, name: str, path: str) -> int:
    """The folder `name` in `parent`, opened to be changed (fchown, fchmod, listed), never through a link."""
    with refused_links(path):
        return open_subfolder(name, parent, path, os.O_RDONLY)
