"""One folder, one agent (SPEC §6c): a POSIX record lock (NFS carries it) on `.minimax-watcher.lock`.

Whatever is at that name is input (THREAT_MODEL rule 2): only an agent's own lock file, made whole before
it appears, keeps others out; a planted locked file is replaced; a directory, socket, FIFO or symlink is
never opened, and the folder is then not held. See docs/architecture.md, 'One folder, one agent'.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import secrets
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass

from watcher.disk.descriptors import is_out_of_descriptors
from watcher.watch.lock_identity import judge, mine

log = logging.getLogger("watcher")

LOCK_NAME = ".minimax-watcher.lock"
_OPEN = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_ATTEMPTS = 4  # looks in a row while the name keeps changing under us (another agent making its file)
_RETELL_SECONDS = 600.0  # a dropper replanting a file over and over gets one warning per this


class LockState(enum.Enum):
    HELD = "held"
    UNLOCKED = "unlocked"  # no lock possible (read-only folder, no lock support): worked on without one
    STANDBY = "standby"  # another agent holds it
    BLOCKED = "blocked"  # the lock name is taken by something that is not a lock file


@dataclass(frozen=True)
class Acquired:
    state: LockState
    detail: str = ""  # STANDBY: who holds it; BLOCKED, UNLOCKED: what is wrong and what to do


@dataclass(frozen=True)
class FolderLocks:
    """The configured folders, and those among them another agent holds (who) or that are blocked (why)."""

    configured: tuple[str, ...]
    standing_by: Mapping[str, str]
    blocked: Mapping[str, str]


class FolderLock:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._path = os.path.join(folder, LOCK_NAME)
        self._fd: int | None = None
        self._inode = 0  # of the folder the lock was taken in: a replaced folder needs a new lock
        self._trusted = {0, os.geteuid()}  # owners an agent's lock file may have; see lock_identity
        self._learned = False  # whether the owner this agent's own files get here is in _trusted
        self._told_at = -_RETELL_SECONDS

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> Acquired:
        if self._fd is not None:
            return Acquired(LockState.HELD)
        try:
            dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            if is_out_of_descriptors(exc):
                raise  # the process's limit, not this folder: the caller tries again later
            return Acquired(LockState.UNLOCKED, f"the folder cannot be opened ({exc.strerror})")
        try:
            for _ in range(_ATTEMPTS):
                try:
                    got = self._attempt(dir_fd)
                except OSError as exc:
                    if exc.errno != errno.ESTALE:
                        raise
                    continue  # the file went while we looked at it (NFS): look again
                if got is not None:
                    return got
            return Acquired(LockState.BLOCKED, f"{self._path} kept changing while the agent looked at it")
        except OSError as exc:  # whatever else the name or the filesystem does: this folder only
            if is_out_of_descriptors(exc):
                raise
            return Acquired(LockState.BLOCKED, f"{self._path} cannot be used as a lock file ({exc.strerror})")
        finally:
            os.close(dir_fd)

    def is_current(self) -> bool:
        """False when the folder was replaced since the lock was taken, or its lock file deleted or
        replaced: the lock then guards nothing another agent would look at."""
        if self._fd is None:
            return False
        try:
            if os.stat(self.folder).st_ino != self._inode:
                return False
            named = os.stat(self._path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the POSIX lock
            self._fd = None

    # ---- one look at the name; None: it changed meanwhile, look again ------------------------------

    def _attempt(self, dir_fd: int) -> Acquired | None:
        try:
            st = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return self._install(dir_fd, replace=False)
        if not stat.S_ISREG(st.st_mode):
            return Acquired(
                LockState.BLOCKED, f"{self._path} is {_kind(st.st_mode)}, not a lock file: remove it"
            )
        if st.st_uid not in self._trusted and not self._learned:
            self._learn_owner(dir_fd)  # before calling it foreign: NFS may give our own files that owner
        try:
            fd = os.open(LOCK_NAME, _OPEN, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR):
                return None  # no longer the regular file just seen
            if exc.errno == errno.EROFS:
                return Acquired(LockState.UNLOCKED, "the folder is read-only")
            if exc.errno in (errno.EACCES, errno.EPERM) and st.st_uid not in self._trusted:
                return self._evict(dir_fd, st, f"owned by uid {st.st_uid}, which no agent here runs as")
            raise
        try:
            held = os.fstat(fd)
            if not stat.S_ISREG(held.st_mode) or not _same(held, st):
                return None
            holder, why_not = judge(fd, held, self._trusted)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    if holder is not None:
                        return Acquired(LockState.STANDBY, holder)
                    return self._evict(dir_fd, held, why_not)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    return Acquired(LockState.UNLOCKED, f"the filesystem offers no locks ({exc.strerror})")
                raise
            if not self._names(dir_fd, held):
                return None
            # Ours now: a fresh file of ours goes in its place, renamed over it while we hold it.
            got = self._install(dir_fd, replace=True)
            if got is not None and got.state is LockState.UNLOCKED and holder is not None:
                self._keep(fd, dir_fd)  # no room for a new file; this one is an agent's: hold it
                fd = -1
                return Acquired(LockState.HELD)
            return got
        finally:
            if fd >= 0:
                os.close(fd)

    def _install(self, dir_fd: int, *, replace: bool) -> Acquired | None:
        """Make this agent's lock file, locked, and put it at the lock name: over the file there
        (`replace`, only by the holder of its lock), or where there is none."""
        temp = f"{LOCK_NAME}.{secrets.token_hex(8)}.new"
        try:
            fd = os.open(temp, _OPEN | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
                return Acquired(LockState.UNLOCKED, f"no lock file can be made here ({exc.strerror})")
            raise
        placed = False
        try:
            os.write(fd, mine().encode())
            os.fsync(fd)  # what another host reads once the name appears
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            made = os.fstat(fd)
            self._trusted.add(made.st_uid)
            placed = self._place(dir_fd, temp, replace)
            if not placed or not self._names(dir_fd, made):
                return None
            self._keep(fd, dir_fd)
            fd = -1
            return Acquired(LockState.HELD)
        finally:
            if fd >= 0:
                os.close(fd)
            if not placed or not replace:
                _unlink_quietly(temp, dir_fd)

    def _place(self, dir_fd: int, temp: str, replace: bool) -> bool:
        if replace:
            os.rename(temp, LOCK_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        try:
            os.link(temp, LOCK_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
                raise
        # No hard links here (vfat, some FUSE): a rename, unless the name appeared meanwhile.
        if os.path.lexists(self._path):
            return False
        os.rename(temp, LOCK_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True

    def _evict(self, dir_fd: int, judged: os.stat_result, why_not: str) -> Acquired | None:
        """Take away a file at the lock name that is locked but not an agent's, and put ours there."""
        aside = f"{LOCK_NAME}.{secrets.token_hex(8)}.replaced"
        try:
            os.rename(LOCK_NAME, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            what = f"{self._path} ({why_not}) is not an agent's lock file"
            return Acquired(LockState.BLOCKED, f"{what} and cannot be replaced ({exc.strerror}): remove it")
        moved = os.stat(aside, dir_fd=dir_fd, follow_symlinks=False)
        if not _same(moved, judged):
            _put_back(dir_fd, aside, moved)  # another agent's file came in meanwhile: its, not ours to take
            return None
        _unlink_quietly(aside, dir_fd)
        now = time.monotonic()
        if now - self._told_at >= _RETELL_SECONDS:
            self._told_at = now
            log.warning(
                "%s: replaced %s, which was not an agent's lock file (%s) and was locked or could not "
                "be locked; such a file keeps no agent out",
                self.folder,
                LOCK_NAME,
                why_not,
            )
        return self._install(dir_fd, replace=False)

    def _learn_owner(self, dir_fd: int) -> None:
        self._learned = True
        probe = f"{LOCK_NAME}.{secrets.token_hex(8)}.new"
        try:
            fd = os.open(probe, _OPEN | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
        except OSError:
            return  # nothing can be made here: nor could another agent on the same terms
        try:
            self._trusted.add(os.fstat(fd).st_uid)
        finally:
            os.close(fd)
            _unlink_quietly(probe, dir_fd)

    def _names(self, dir_fd: int, held: os.stat_result) -> bool:
        """Whether the lock name is (still) the file `held`."""
        try:
            return _same(os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False), held)
        except FileNotFoundError:
            return False

    def _keep(self, fd: int, dir_fd: int) -> None:
        self._fd = fd
        self._inode = os.fstat(dir_fd).st_ino


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _put_back(dir_fd: int, aside: str, moved: os.stat_result) -> None:
    if not stat.S_ISREG(moved.st_mode):
        return  # a dropper's thing: left aside under that dot-name, never renamed over a lock file
    try:
        os.link(aside, LOCK_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        pass  # the name was taken meanwhile: whoever holds that one decides
    _unlink_quietly(aside, dir_fd)


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _kind(mode: int) -> str:
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"
