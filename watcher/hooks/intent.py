"""Where a hook run's record was about to be written, and where the file is now, after a kill -9.

A run prepared but never committed runs if and only if its record exists: the file is recognised by its
inode, the record by what the agent wrote into it (a planted record describes another upload). See
docs/architecture.md, 'Hooks'.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from watcher.disk.files import lstat_beneath
from watcher.disk.mover import MAX_CLASHES, clash_name
from watcher.disk.records import read_record

# What the agent wrote into a sidecar or an error record that a move keeps (it rewrites `file`).
IDENTITY_KEYS = ("fileID", "sha256", "uploadedAt", "error", "code", "failedAt", "size", "mtime_ns", "ino")
# Names in the destination tried past the last one taken, before deciding the file is not there: a
# name freed since (a file deleted from done_dir) must not end the search early.
FREE_NAMES_TRIED = 16


@dataclass(frozen=True)
class RecordPlace:
    root: str  # the watched folder
    path: str  # the file, below `root`
    suffix: str  # its record's: `.json` or `.error.json`
    dest: str | None  # done_dir or failed_dir, where the file may have gone
    ino: int  # the file's inode

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> RecordPlace:
        """ValueError when `data` is not what `to_json` wrote."""
        if not isinstance(data, dict):
            raise ValueError("not a record place")
        root, path, suffix, dest, ino = (data.get(k) for k in ("root", "path", "suffix", "dest", "ino"))
        if not (isinstance(root, str) and isinstance(path, str) and isinstance(suffix, str)):
            raise ValueError("not a record place")
        if not isinstance(ino, int) or not (dest is None or isinstance(dest, str)):
            raise ValueError("not a record place")
        return cls(root, path, suffix, dest, ino)


def locate(place: RecordPlace, document: dict[str, Any]) -> str | None:
    """Where the file is now beside the record `document` describes: its old path, or its new one in
    `place.dest`; None when no such record exists (it was never written: the file is uploaded again,
    and that upload has its own run)."""
    if _holds(place.root, place.path, place, document):
        return place.path
    if place.dest is None or not place.path.startswith(place.root.rstrip("/") + "/"):
        return None
    relative = os.path.relpath(place.path, place.root)
    folder = os.path.join(place.dest, os.path.dirname(relative))
    name = os.path.basename(relative)
    free = 0
    for n in range(MAX_CLASHES):
        candidate = os.path.join(folder, clash_name(name, n))
        if _holds(place.dest, candidate, place, document):
            return candidate
        free = free + 1 if not _exists(place.dest, candidate, place.suffix) else 0
        if free >= FREE_NAMES_TRIED:
            return None
    return None


def _holds(root: str, path: str, place: RecordPlace, document: dict[str, Any]) -> bool:
    """Whether `path` is the file (same inode) and its record is the one the agent wrote."""
    try:
        if lstat_beneath(root, path).st_ino != place.ino:
            return False
    except (OSError, ValueError):
        return False
    record = read_record(path + place.suffix, root=root)
    if record is None:
        return False
    return all(record.get(key) == document[key] for key in IDENTITY_KEYS if key in document)


def _exists(root: str, path: str, suffix: str) -> bool:
    for name in (path, path + suffix):
        try:
            lstat_beneath(root, name)
            return True
        except (OSError, ValueError):
            continue
    return False
