"""Content dedupe per account: identical bytes already uploaded for an account reuse their fileID.

Checked in two cheap steps before the one that costs a read of the whole file: the size must match an
earlier upload's, then the hash of the first 64 KiB. Only then is the file hashed in full (it is
otherwise hashed once, while it streams to the API). Uploads known only from sidecars written by an
earlier run have no head hash: a file of their size is hashed in full.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class KnownUpload:
    file_id: str
    oss_path: str


def head_digest(fd: int) -> str:
    """The sha256 of a file's first HEAD_BYTES."""
    return hashlib.sha256(os.pread(fd, HEAD_BYTES, 0)).hexdigest()


class DedupeIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_size: dict[tuple[str, int], dict[str, KnownUpload]] = {}
        self._heads: dict[tuple[str, int], set[str | None]] = {}

    def add(self, account: str, size: int, sha256: str, upload: KnownUpload, head: str | None = None) -> None:
        with self._lock:
            self._by_size.setdefault((account, size), {})[sha256] = upload
            self._heads.setdefault((account, size), set()).add(head)

    def may_hold(self, account: str, size: int, head: str) -> bool:
        """Whether a file of this size and head could be a known upload (then hash it in full)."""
        with self._lock:
            heads = self._heads.get((account, size))
            return heads is not None and (head in heads or None in heads)

    def find(self, account: str, size: int, sha256: str) -> KnownUpload | None:
        with self._lock:
            return self._by_size.get((account, size), {}).get(sha256)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_size.values())
