from __future__ import annotations

from watcher.core.renames import MAX_AGE_SECONDS, MAX_REMEMBERED, RecentlyGone
from watcher.core.signature import FileSignature

SIG = FileSignature(10, 1_000, 77, 5)


def test_a_file_with_the_gone_files_inode_size_and_mtime_was_renamed_from_it() -> None:
    gone = RecentlyGone()
    gone.note("/d", "/d/a.png", SIG, (9, 9), now=0.0)
    found = gone.take("/d", "/d/b.png", FileSignature(10, 1_000, 77, 6), now=1.0)
    assert found is not None and found.path == "/d/a.png" and found.record_id == (9, 9)
    assert gone.take("/d", "/d/b.png", SIG, now=1.0) is None  # taken once


def test_other_bytes_another_folder_or_too_late_are_not_a_rename() -> None:
    gone = RecentlyGone()
    for root, sig, now in [
        ("/d", FileSignature(11, 1_000, 77, 5), 1.0),
        ("/d", FileSignature(10, 2_000, 77, 5), 1.0),
        ("/e", SIG, 1.0),
        ("/d", SIG, MAX_AGE_SECONDS + 1),
    ]:
        gone.note("/d", "/d/a.png", SIG, (9, 9), now=0.0)
        assert gone.take(root, "/d/b.png", sig, now) is None
    gone.note("/d", "/d/a.png", SIG, (9, 9), now=0.0)
    assert gone.take("/d", "/d/a.png", SIG, 1.0) is None  # back at its own name: nothing to tidy


def test_memory_is_bounded() -> None:
    gone = RecentlyGone()
    for ino in range(MAX_REMEMBERED + 100):
        gone.note("/d", f"/d/{ino}.png", FileSignature(1, 1, ino, 1), (1, 1), now=0.0)
    assert gone.take("/d", "/d/x.png", FileSignature(1, 1, 0, 1), 1.0) is None  # the oldest went
    assert gone.take("/d", "/d/x.png", FileSignature(1, 1, MAX_REMEMBERED + 99, 1), 1.0) is not None
