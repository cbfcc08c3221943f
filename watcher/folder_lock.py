"""One folder, one agent (SPEC §6c): a POSIX record lock on `.minimax-watcher.lock` inside the folder.

POSIX locks (`fcntl`/`lockf`, not `flock`) are the kind NFS carries to the server: with NFSv4, or NFSv3
with a lock manager (lockd), two agents on two hosts that mount the same folder exclude each other too.
The kernel (or the NFS server, once the holder's lease ends) drops the lock when its holder dies, kill -9
included, so a stand-by agent takes the folder over by simply trying again.

The lock file is a dot-file, which the agent never uploads; it is created in the folder without
following a symlink, and left in place (removing it would race with another agent opening it).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os

from watcher.descriptors import is_out_of_descriptors

log = logging.getLogger("watcher")

LOCK_NAME = ".minimax-watcher.lock"


class FolderLock:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._fd: int | None = None
        self._inode = 0  # of the folder the lock was taken in: a replaced folder needs a new lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool | None:
        """True: held now. False: another agent holds it. None: the folder has no room for a lock file
        (read-only, gone): the caller goes on without one, as nothing could be written there anyway."""
        if self._fd is not None:
            return True
        try:
            dir_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            if is_out_of_descriptors(exc):
                raise  # the process's limit, not this folder: the caller tries again later
            return None
        try:
            fd = _open_lock_file(dir_fd)
            if fd is None:
                return None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    return False
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    log.warning("%s: the filesystem offers no locks (%s); two agents on this folder would "
                                "both upload from it", self.folder, exc.strerror)  # fmt: skip
                    return None
                raise
            self._fd = fd
            self._inode = os.fstat(dir_fd).st_ino
            return True
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
            named = os.stat(os.path.join(self.folder, LOCK_NAME), follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the POSIX lock
            self._fd = None


def _open_lock_file(dir_fd: int) -> int | None:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        return os.open(LOCK_NAME, flags, 0o664, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
            return None
        if exc.errno == errno.ELOOP:
            log.warning("folder lock: %s is a symlink in the folder; not followed, no lock taken", LOCK_NAME)
            return None
        raise
