"""The kernel's inotify limits (sysctls) as the agent reads them: which one to raise, and to what, when a
folder ran out of watches or instances; how many events the kernel queues before it overflows."""

from __future__ import annotations

import errno
import os
import pathlib

from watcher.core.folders import Folder
from watcher.watch.inotify import subfolders


def raise_limit_hint(exc: OSError, folder: Folder) -> str:
    """Which sysctl to raise, and to what, for the inotify limit `exc` ran into."""
    if exc.errno == errno.EMFILE:
        name, current, note = _limit("instances")
        needed = current + 1  # the agent needs one instance, whatever its number of folders
        suggested = max(current * 2, 256)
    else:
        name, current, note = _limit("watches")
        # At the refusal every watch allowed was in use, the folder's own included (let go of since).
        needed = current - getattr(exc, "held", 0) + _count_watches(folder)
        suggested = needed * 2
    return f"Raise {name} (now {current}{note}) to at least {needed}, e.g. sysctl -w {name}={suggested}"


def _limit(what: str) -> tuple[str, int, str]:
    """The sysctl bounding this user's inotify `what` ("watches", "instances"), its value, and a note.

    The host's fs.inotify.max_user_* usually; in a user namespace (a container) with a lower limit of its
    own, that one: user.max_inotify_*, which reads the same as the host's outside of one.
    """
    host_name = f"fs.inotify.max_user_{what}"
    host = _read_sysctl(host_name)
    own = _read_sysctl(f"user.max_inotify_{what}")
    if own is not None and host is not None and own < host:
        return (
            f"user.max_inotify_{what}",
            own,
            f", this user namespace's limit; the host's {host_name} is {host}",
        )
    return host_name, host or 0, ""


def queued_events_limit() -> int | None:
    """fs.inotify.max_queued_events: how many events the kernel queues before it overflows."""
    return _read_sysctl("fs.inotify.max_queued_events")


def _read_sysctl(name: str) -> int | None:
    try:
        return int(pathlib.Path("/proc/sys", *name.split(".")).read_text().strip())
    except (OSError, ValueError):
        return None


def _count_watches(folder: Folder) -> int:
    """The watches `folder` needs: itself, and each subfolder the agent looks into when recursive."""
    if not folder.recursive:
        return 1
    return 1 + sum(1 for _ in subfolders(os.fsencode(folder.path)))
