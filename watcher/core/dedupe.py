"""Content dedupe per account: identical bytes already uploaded for an account reuse their fileID."""

from __future__ import annotations

from dataclasses import dataclass

# A file is hashed in full only when an earlier upload has its size and the hash of this head (or no
# head hash: known from a sidecar alone); otherwise it is hashed once, as it streams to the API.
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class KnownUpload:
    file_id: str
    oss_path: str
