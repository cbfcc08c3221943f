"""Walking a folder: what it lists, and that nothing outside it is listed or removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.helpers.images import png_bytes
from watcher.inventory import walk_candidates
from watcher.messages import FileState


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
