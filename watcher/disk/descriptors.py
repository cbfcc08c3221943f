"""File descriptors: the process's limit raised as far as it may go at start, and how many are left.

Each watched folder holds one (its lock file), so ~1,000 folders exceed the default 1,024. Under the
shipped unit, whose system call filter refuses setrlimit, `LimitNOFILE=` sets the limit instead.
"""

from __future__ import annotations

import errno
import logging
import os
import resource

log = logging.getLogger("watcher")

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})

# Kept free of watched folders' lock files, for the agent's own work: uploads (a file and a socket
# each), hook runs' pipes, the index, the scans' open folders, the listeners' connections.
FOLDER_RESERVE = 256


def raise_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard one where allowed; the soft limit now (None: unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:
            log.debug("cannot raise the descriptor limit from %d to %d: %s", soft, hard, exc)
    return limit()


def limit() -> int | None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def in_use() -> int | None:
    """How many descriptors the process has open, or None when it cannot tell (no /proc, none left)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one the listing itself used
    except OSError:
        return None


def spare() -> int | None:
    """Descriptors left below the soft limit; None when unlimited or unknown."""
    soft, used = limit(), in_use()
    if soft is None or used is None:
        return None
    return soft - used


def is_out_of_descriptors(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS
