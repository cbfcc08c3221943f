"""One version of a file, identified from its stat without reading it: `FileSignature`, `RecordId`."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

# A record file's identity: (st_ino, st_ctime_ns). Replacing it (a new inode, or the same one reused)
# or editing it in place changes its ctime, which no one can set back; (0, 0) when unknown.
RecordId = tuple[int, int]
NO_RECORD_ID: RecordId = (0, 0)


def record_id_of(st: os.stat_result) -> RecordId:
    return (st.st_ino, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What identifies one version of a file's bytes without reading them."""

    size: int
    mtime_ns: int
    ino: int = 0
    # Moves on every write and cannot be set back (`cp -p` puts size and mtime back, not this), but
    # also on chmod, chown, link and rename: so it is not part of equality (settling, a change during
    # an upload); "done" compares it where a sidecar or the index recorded it. 0 when unknown.
    ctime_ns: int = field(default=0, compare=False)


def signature_of(st: os.stat_result) -> FileSignature:
    return FileSignature(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def is_regular_file_mode(mode: int) -> bool:
    """Regular files only: symlinks, directories, FIFOs, sockets and devices are never candidates."""
    return stat.S_ISREG(mode)


# A directory stamp (mtime, ctime) read less than this long after it moved is not trusted: a change
# within the same timestamp tick would not move it again.
RACY_NS = 2_000_000_000

# The kernel stamps files from a coarse clock, up to a tick behind time.time(): a file written just
# after a time.time() reading may look older than it. Start times that sort files by age allow this.
COARSE_CLOCK_SLACK = 0.05  # seconds
