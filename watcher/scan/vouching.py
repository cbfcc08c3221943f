"""Which files of a directory the index vouches for: done, with nothing to read (two stats per file).

Kept apart from `watcher.scan.inventory` so that the start-up helper applies the very same rule with few
imports. See docs/architecture.md, 'Finding files and knowing them'.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from watcher.core.media import SIDECAR_SUFFIX
from watcher.state.index import DoneRow


def check_directory(
    dir_fd: int, names: Collection[str], known: Mapping[str, DoneRow], account: str
) -> tuple[set[str], list[str]]:
    """The names the index vouches for, and the known names no longer listed (`names`: the listing)."""
    vouched: set[str] = set()
    vanished: list[str] = []
    stat = os.stat
    # This loop runs once per done file of every folder at each start: it stays lean and field by field.
    for name, row in known.items():
        if name not in names:
            vanished.append(name)
            continue
        record = name + SIDECAR_SUFFIX
        if not row[4] or row[3] != account or record not in names:
            continue
        try:
            st = stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (
                st.st_ino == row[2]
                and st.st_mtime_ns == row[1]
                and st.st_size == row[0]
                and st.st_ctime_ns == row[6]
            ):
                sidecar = stat(record, dir_fd=dir_fd, follow_symlinks=False)
                if sidecar.st_ino == row[4] and sidecar.st_ctime_ns == row[5]:
                    vouched.add(name)
        except OSError:
            continue  # vanished while we looked: the walk that reports it sees that too
    return vouched, vanished
