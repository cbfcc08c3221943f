"""Walking a folder: what it lists, and that nothing outside it is listed or removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.helpers.images import png_bytes
from watcher.core.messages import FileState
from watcher.scan.inventory import DirectoryMemo, walk_candidates


def test_a_subfolder_swapped_for_a_link_lists_and_removes_nothing_outside(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    outside = tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "private.png").write_bytes(png_bytes(1))
    leftover = outside / ".private.png.json.0123abcd.tmp"  # looks like a crash's temporary
    leftover.write_text("{}")
    os.utime(leftover, (1, 1))
    (root / "sub").symlink_to(outside)
    # The scanner was asked to walk `sub` (a subfolder appeared), and it became a link meanwhile.
    found = list(walk_candidates(str(root), True, None, start=str(root / "sub"),
                                 remove_temporaries_before=time.time()))  # fmt: skip
    assert found == []
    assert leftover.exists()


def test_a_recursive_walk_reports_each_candidate_once_with_its_state(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "top.png").write_bytes(png_bytes(2))
    (root / "a" / "b" / "deep.png").write_bytes(png_bytes(3))
    (root / ".hidden" / "no.png").write_bytes(png_bytes(4))
    (root / "a" / "notes.txt").write_text("x")
    listings: dict[str, set[str]] = {}
    found = list(walk_candidates(str(root), True, None, on_listing=listings.__setitem__))
    assert sorted(os.path.relpath(f.path, root) for f in found) == ["a/b/deep.png", "top.png"]
    assert all(f.state is FileState.PENDING for f in found)
    assert set(listings) == {str(root), str(root / "a"), str(root / "a" / "b")}
    stale = root / ".top.png.json.0123abcd.tmp"
    stale.write_text("{")
    os.utime(stale, (1, 1))
    fresh = root / ".top.png.json.89abcdef.tmp"
    fresh.write_text("{")
    list(walk_candidates(str(root), False, None, remove_temporaries_before=time.time() - 60))
    assert not stale.exists() and fresh.exists()  # a temporary newer than the process is being written


def test_a_periodic_rescan_lists_only_the_directories_that_changed_or_whose_turn_it_is(
    tmp_path: Path,
) -> None:
    root = tmp_path / "drop"
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    (root / "b" / "y.png").write_bytes(b"y")
    dirs = [str(root), str(root / "a"), str(root / "b")]
    for directory in dirs:  # written an hour ago: adding a file now moves the mtime, whatever the tick
        os.utime(directory, (time.time() - 3600, time.time() - 3600))
    memo = DirectoryMemo(racy_ns=0)  # stamps made just now are trusted: the test does not wait 2 s

    def names(turn: int | None) -> tuple[set[str], set[str]]:
        unchanged: set[str] = set()
        found = walk_candidates(str(root), True, None, memo=memo, turn=turn, on_unchanged=unchanged.add)
        return {os.path.basename(f.path) for f in found}, unchanged

    quiet = next(
        t for t in range(DirectoryMemo.ROTATION) if t not in {DirectoryMemo.turn_of(d) for d in dirs}
    )
    assert names(None) == ({"x.png", "y.png"}, set()), "a full scan lists everything, and remembers it"
    assert names(quiet) == (set(), set(dirs)), "nothing changed: nothing listed, subfolders still visited"
    (root / "b" / "z.png").write_bytes(b"z")
    assert names(quiet) == ({"y.png", "z.png"}, {str(root), str(root / "a")})
    assert names(DirectoryMemo.turn_of(str(root / "a")))[0] >= {"x.png"}, (
        "its turn: listed whatever its stamp"
    )
    memo.clear()
    assert names(quiet) == ({"x.png", "y.png", "z.png"}, set()), "after lost events, everything again"
