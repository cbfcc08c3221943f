"""Content dedupe per account: identical bytes already uploaded for an account reuse their fileID.

Keyed first by (account, size) so that only a file whose size matches something already uploaded is
hashed before its upload; every other file is hashed once, while it streams to the API.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownUpload:
    file_id: str
    oss_path: str


class DedupeIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_size: dict[tuple[str, int], dict[str, KnownUpload]] = {}

    def add(self, account: str, size: int, sha256: str, upload: KnownUpload) -> None:
        with self._lock:
            self._by_size.setdefault((account, size), {})[sha256] = upload

    def has_size(self, account: str, size: int) -> bool:
        with self._lock:
            return (account, size) in self._by_size

    def find(self, account: str, size: int, sha256: str) -> KnownUpload | None:
        with self._lock:
            return self._by_size.get((account, size), {}).get(sha256)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_size.values())
