"""Content dedupe per account: identical bytes already uploaded for an account reuse their fileID.

Checked in two cheap steps before the one that costs a read of the whole file: the size must match an
earlier upload's, then the hash of the first 64 KiB. Only then is the file hashed in full (it is
otherwise hashed once, while it streams to the API). Uploads known only from sidecars written by an
earlier run have no head hash: a file of their size is hashed in full.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class KnownUpload:
    file_id: str
    oss_path: str


class DedupeIndex:
    """Flat sets and dicts keyed by tuples: about 600 bytes per known upload, for 100,000 of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: dict[tuple[str, int, str], KnownUpload] = {}
        self._heads: set[tuple[str, int, str]] = set()
        self._headless: set[tuple[str, int]] = set()  # sizes with an upload whose head is unknown

    def add(self, account: str, size: int, sha256: str, upload: KnownUpload, head: str | None = None) -> None:
        with self._lock:
            self._uploads[(account, size, sha256)] = upload
            if head is None:
                self._headless.add((account, size))
            else:
                self._heads.add((account, size, head))

    def may_hold(self, account: str, size: int, head: str) -> bool:
        """Whether a file of this size and head could be a known upload (then hash it in full)."""
        with self._lock:
            return (account, size, head) in self._heads or (account, size) in self._headless

    def find(self, account: str, size: int, sha256: str) -> KnownUpload | None:
        with self._lock:
            return self._uploads.get((account, size, sha256))

    def __len__(self) -> int:
        with self._lock:
            return len(self._uploads)
