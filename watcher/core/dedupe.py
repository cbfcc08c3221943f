"""Content dedupe per account: identical bytes already uploaded for an account reuse their fileID.

Cheap checks first (the size, then the hash of the first 64 KiB), the full hash last. See
docs/architecture.md, 'Uploading'.
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
