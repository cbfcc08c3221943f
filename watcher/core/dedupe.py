"""Content dedupe per account: identical bytes already uploaded for an account reuse their fileID.

Checked in two cheap steps before the one that costs a read of the whole file: the size must match an
earlier upload's, then the hash of the first 64 KiB. Only then is the file hashed in full (it is
otherwise hashed once, while it streams to the API). Uploads known only from sidecars written by an
earlier run have no head hash: a file of their size is hashed in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class KnownUpload:
    file_id: str
    oss_path: str


class KnownUploads(Protocol):
    """Uploads an account already has, by size and sha256 (`watcher.state.index.HistoryIndex` keeps them)."""

    def add(
        self, account: str, size: int, sha256: str, upload: KnownUpload, head: str | None = None
    ) -> None: ...

    def may_hold(self, account: str, size: int, head: str) -> bool:
        """Whether a file of this size and head could be a known upload (then hash it in full)."""
        ...

    def find(self, account: str, size: int, sha256: str) -> KnownUpload | None: ...
