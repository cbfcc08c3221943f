from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from tests.helpers import ACCOUNT, TOKEN
from watcher.core.dedupe import HEAD_BYTES, KnownUpload
from watcher.core.outcome import UploadSuccess
from watcher.emulator import Emulator
from watcher.state.index import MAY_HOLD_SQL, SCHEMA, HistoryIndex
from watcher.upload.client import BACKGROUND_HASH_FROM, UploadClient

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


def test_the_head_check_looks_up_its_rows_instead_of_reading_every_upload_of_the_same_size() -> None:
    # A render's frames often share one size; the check must not cost more as such uploads pile up.
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + MAY_HOLD_SQL, (ACCOUNT, 1000, "h"))]

    searches = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert len(searches) == 2, plan
    assert all("uploads_by_head (account=? AND size=? AND head=?)" in step for step in searches), plan


def test_the_head_check_still_finds_a_head_among_many_uploads_of_the_same_size() -> None:
    index = HistoryIndex(None)
    for n in range(300):
        index.add(ACCOUNT, 1000, f"hash-{n}", KNOWN, head=f"head-{n}")

    assert index.may_hold(ACCOUNT, 1000, "head-150")
    assert not index.may_hold(ACCOUNT, 1000, "head-300")
    index.add(ACCOUNT, 1000, "from-a-sidecar", KNOWN)  # no head known: every file of its size may match
    assert index.may_hold(ACCOUNT, 1000, "head-300")
