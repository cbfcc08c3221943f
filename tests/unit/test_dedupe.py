from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.helpers import ACCOUNT, TOKEN
from watcher.client import BACKGROUND_HASH_FROM, UploadClient
from watcher.dedupe import HEAD_BYTES, KnownUpload
from watcher.emulator import Emulator
from watcher.history import HistoryIndex
from watcher.outcome import UploadSuccess

KNOWN = KnownUpload("user:1-minimax:1-file:1", "https://oss/1")


def test_a_file_is_hashed_in_full_only_when_size_and_head_match() -> None:
    index = HistoryIndex(None)
    index.add(ACCOUNT, 1000, "full-hash", KNOWN, head="head-a")

    assert index.may_hold(ACCOUNT, 1000, "head-a")
    assert not index.may_hold(ACCOUNT, 1000, "head-b"), "same size, other head: no full hash needed"
    assert not index.may_hold(ACCOUNT, 999, "head-a")
    assert not index.may_hold("other-account", 1000, "head-a")
    assert index.find(ACCOUNT, 1000, "full-hash") == KNOWN
    assert index.find(ACCOUNT, 1000, "other") is None


def test_uploads_known_only_from_sidecars_make_every_file_of_their_size_a_candidate() -> None:
    index = HistoryIndex(None)
    index.add(ACCOUNT, 1000, "full-hash", KNOWN)  # from a sidecar: no head hash known

    assert index.may_hold(ACCOUNT, 1000, "any-head")


def test_large_bodies_hashed_in_the_background_still_hash_every_byte(tmp_path: Path, emu: Emulator) -> None:
    size = BACKGROUND_HASH_FROM + 3 * HEAD_BYTES + 17  # several chunks, an odd tail
    data = os.urandom(1 << 20) * (size // (1 << 20)) + os.urandom(size % (1 << 20))
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data[8:])
    client = UploadClient(emu.base_url, TOKEN)
    fd = os.open(path, os.O_RDONLY)
    try:
        outcome = client.post_file(fd, size, "image/png", ACCOUNT)
    finally:
        os.close(fd)
        client.close()

    assert isinstance(outcome, UploadSuccess)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert outcome.sha256 == expected == emu.uploads[0].sha256
