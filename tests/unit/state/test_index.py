"""The index in the state folder: a cache of the sidecars, on disk, that loses to them and survives damage."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.helpers import wait_for
from watcher.core.dedupe import KnownUpload
from watcher.core.messages import FileState
from watcher.core.signature import FileSignature, signature_of
from watcher.disk.records import build_sidecar, write_sidecar_atomically
from watcher.scan.inventory import walk_candidates
from watcher.state.index import INDEX_NAME, HistoryIndex, KnownDone
from watcher.state.index_reader import IndexReader

SIG = FileSignature(100, 1_700_000_000_000_000_000, 42)
ROW = (SIG.size, SIG.mtime_ns, SIG.ino)


def test_done_files_are_kept_by_directory_and_forgotten_by_name_or_by_subtree() -> None:
    index = HistoryIndex(None)
    index.put("/drop/a/x.png", SIG, "111", (7, 1))
    index.put("/drop/a/y.png", SIG, "111", (8, 1))
    index.put("/drop/a/sub/z.png", SIG, "111", (9, 1))
    index.put("/drop/ab/w.png", SIG, "111", (10, 1))

    assert index.get("/drop/a/x.png") == SIG and "/drop/a/y.png" in index and len(index) == 4
    assert index.known_in("/drop/a") == {"x.png": (*ROW, "111", 7, 1, 0), "y.png": (*ROW, "111", 8, 1, 0)}
    assert index.lookup("/drop/a/x.png") == KnownDone(SIG, "111", (7, 1))
    assert index.forget("/drop/a", ["x.png", "never.png"]) == 1
    assert index.pop("/drop/a/y.png") and not index.pop("/drop/a/y.png")
    index.forget_under("/drop/a", except_dirs={"/drop/a"})
    assert "/drop/a/sub/z.png" not in index
    assert "/drop/ab/w.png" in index, "a sibling whose name starts the same is not below /drop/a"
    index.put("/drop/A/sub/v.png", SIG, "111", (11, 1))
    index.forget_under("/drop/a")
    assert "/drop/A/sub/v.png" in index, "paths are case-sensitive"


def test_a_folder_counts_its_own_done_files_and_its_subfolders_only_when_recursive() -> None:
    index = HistoryIndex(None)
    for i, path in enumerate(["/drop/a/x.png", "/drop/a/y.png", "/drop/a/sub/z.png", "/drop/ab/w.png"]):
        index.put(path, SIG, "111", (i, 1))
    index.put("/drop/a0/v.png", SIG, "111", (9, 1))  # "0" sorts right after "/"

    assert (index.count_in("/drop/a", False), index.count_in("/drop/a", True)) == (2, 3)
    assert (index.count_in("/drop/ab", True), index.count_in("/drop/new", True), len(index)) == (1, 0, 5)
    assert index.count_in("/drop", False) == 0 and index.count_in("/drop", True) == 5


def test_what_is_written_survives_a_restart_and_the_file_is_private(tmp_path: Path) -> None:
    index = HistoryIndex(tmp_path)
    index.put("/drop/x.png", SIG, "111", (7, 1))
    index.add("111", 100, "sha", KnownUpload("user:1-minimax:111-file:1", "https://oss/1"), head="h")
    index.close()

    again = HistoryIndex(tmp_path)
    assert again.get("/drop/x.png") == SIG
    assert again.find("111", 100, "sha") == KnownUpload("user:1-minimax:111-file:1", "https://oss/1")
    assert again.may_hold("111", 100, "h") and not again.may_hold("111", 100, "other")
    assert stat.S_IMODE(os.stat(tmp_path / INDEX_NAME).st_mode) == 0o600
    again.close()


def test_changes_are_committed_in_the_background_within_a_second_or_so(tmp_path: Path) -> None:
    index = HistoryIndex(tmp_path)
    index.start()
    index.put("/drop/x.png", SIG, "111", (7, 1))

    def committed() -> bool:
        other = sqlite3.connect(tmp_path / INDEX_NAME)
        try:
            return bool(other.execute("SELECT count(*) FROM done").fetchone()[0] == 1)
        finally:
            other.close()

    wait_for(committed, 10, "the change to reach the file")
    index.close()


@pytest.mark.parametrize(
    "damage", [b"", b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_damaged_index_is_started_afresh_with_a_warning(
    tmp_path: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    index = HistoryIndex(tmp_path)
    index.put("/drop/x.png", SIG, "111", (7, 1))
    index.close()
    (tmp_path / INDEX_NAME).write_bytes(damage)
    for leftover in ("-wal", "-shm"):
        (tmp_path / f"{INDEX_NAME}{leftover}").unlink(missing_ok=True)

    with caplog.at_level(logging.WARNING):
        again = HistoryIndex(tmp_path)
        again.put("/drop/y.png", SIG, "111", (8, 1))
    assert "/drop/x.png" not in again and "/drop/y.png" in again
    if damage:
        assert "starting it afresh" in caplog.text
    again.close()


def test_an_index_of_another_schema_version_is_started_afresh(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / INDEX_NAME)
    db.execute("CREATE TABLE done (whatever)")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    index = HistoryIndex(tmp_path)
    index.put("/drop/y.png", SIG, "111", (8, 1))
    assert index.get("/drop/y.png") == SIG
    index.close()


def _uploaded(folder: Path, name: str, account: str = "111") -> Path:
    image = folder / name
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode())
    signature = signature_of(image.stat())
    sidecar = build_sidecar(
        image_path=str(image),
        account=account,
        file_id=f"user:1-minimax:{account}-file:1",
        oss_path="https://oss/1",
        signature=signature,
        sha256="ab",
        content_type="image/png",
    )
    write_sidecar_atomically(str(image), sidecar)
    return image


def test_a_walk_skips_the_sidecars_the_index_vouches_for_and_reads_any_other(tmp_path: Path) -> None:
    index = HistoryIndex(None)
    kept, replaced, changed = (_uploaded(tmp_path, n) for n in ("kept.png", "replaced.png", "changed.png"))
    gone = tmp_path / "gone.png"
    for image in (kept, replaced, changed):
        record = (tmp_path / f"{image.name}.json").stat()
        index.put(str(image), signature_of(image.stat()), "111", (record.st_ino, record.st_ctime_ns))
    index.put(str(gone), SIG, "111", (1, 1))
    # Someone else's sidecar renamed over ours (another inode): it is read again, and here it does not
    # match the file, so the file is pending.
    (tmp_path / "replaced.png.json").unlink()
    (tmp_path / ".other.json").write_text('{"fileID": "user:1-minimax:111-file:2", "size": 1}')
    os.rename(tmp_path / ".other.json", tmp_path / "replaced.png.json")
    changed.write_bytes(b"\x89PNG\r\n\x1a\n new bytes")
    vanished: list[tuple[str, list[str]]] = []

    found = {
        os.path.basename(f.path): f
        for f in walk_candidates(
            str(tmp_path),
            False,
            "111",
            known_in=index.known_in,
            on_vanished=lambda d, names: vanished.append((d, names)),
        )
    }
    assert "kept.png" not in found, "vouched for by the index: not reported, its sidecar not read"
    assert found["replaced.png"].state is FileState.PENDING
    assert found["changed.png"].state is FileState.PENDING
    assert vanished == [(str(tmp_path), ["gone.png"])]


def test_a_walk_reads_the_sidecar_again_for_another_account_and_reports_its_inode(tmp_path: Path) -> None:
    index = HistoryIndex(None)
    image = _uploaded(tmp_path, "x.png", account="222")
    record = (tmp_path / "x.png.json").stat()
    record_id = (record.st_ino, record.st_ctime_ns)
    index.put(str(image), signature_of(image.stat()), "111", record_id)  # the folder was 111's then

    [found] = walk_candidates(str(tmp_path), False, "222", known_in=index.known_in)
    assert found.state is FileState.DONE and found.record is not None and found.record_id == record_id


def test_the_identity_a_sidecar_write_returns_is_the_one_a_later_listing_sees(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    record_id = write_sidecar_atomically(str(image), {"fileID": "f"})
    st = (tmp_path / "x.png.json").stat()
    assert record_id == (st.st_ino, st.st_ctime_ns)


def test_a_state_folder_that_cannot_be_written_leaves_the_index_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / INDEX_NAME).mkdir()  # what cannot be opened as a file, even by root
    with caplog.at_level(logging.WARNING):
        index = HistoryIndex(tmp_path)
    index.put("/drop/y.png", SIG, "111", (8, 1))
    assert index.get("/drop/y.png") == SIG
    assert "keeping it in memory for this run" in caplog.text
    index.close()


def test_a_name_that_is_not_utf8_is_not_indexed_and_counts_as_maybe_known() -> None:
    index = HistoryIndex(None)
    name = os.fsdecode(b"/drop/latin1-\xe9t\xe9.png")
    index.put(name, SIG, "111", (8, 1))
    assert index.get(name) is None and index.known_in(os.fsdecode(b"/drop/\xe9")) == {}
    assert index.pop(name), "its sidecar's removal is looked into"


def test_an_index_made_for_another_api_user_or_base_url_counts_for_nothing(tmp_path: Path) -> None:
    index = HistoryIndex(tmp_path, "owner-a")
    index.put("/drop/x.png", SIG, "111", (7, 1))
    index.add("111", 100, "ab", KnownUpload("user:1-minimax:111-file:1", "https://oss/1"))
    index.close()
    same = HistoryIndex(tmp_path, "owner-a")
    assert "/drop/x.png" in same and same.find("111", 100, "ab") is not None
    same.close()
    reader = IndexReader.open(tmp_path / INDEX_NAME, "owner-b")
    assert reader is None  # `status` for another user does not use it
    other = HistoryIndex(tmp_path, "owner-b")
    assert len(other) == 0 and other.find("111", 100, "ab") is None
    other.close()
    with contextlib.closing(sqlite3.connect(tmp_path / INDEX_NAME)) as db:
        assert db.execute("SELECT count(*) FROM uploads").fetchone() == (0,)
