"""walk: os.fwalk's top-down listing, without recursion, through no symlink, to a depth."""

from __future__ import annotations

import os
from pathlib import Path

from watcher.disk.walk import walk


def tree(tmp_path: Path) -> int:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "a" / "one.txt").write_text("x")
    (tmp_path / "z").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("x")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "outside")
    return os.open(tmp_path, os.O_RDONLY)


def test_top_down_depth_first_never_through_a_link(tmp_path: Path) -> None:
    top = tree(tmp_path)
    try:
        seen = [(level.path, sorted(level.dirs), sorted(level.files)) for level in walk("T", top, 10)]
    finally:
        os.close(top)
    assert seen == [
        ("T", ["a", "outside", "z"], []),
        ("T/a", ["b", "link"], ["one.txt"]),  # the link is named with the folders, never entered
        ("T/a/b", ["c"], []),
        ("T/a/b/c", [], ["deep.txt"]),
        ("T/outside", [], ["secret.txt"]),
        ("T/z", [], []),
    ]


def test_pruned_folders_and_those_past_the_depth_are_not_entered(tmp_path: Path) -> None:
    top = tree(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    try:
        seen = []
        for level in walk(".", top, 2):
            level.dirs[:] = [d for d in level.dirs if d != "outside"]
            seen.append((level.path, level.deepest))
    finally:
        os.close(top)
    assert seen == [(".", False), ("./a", False), ("./a/b", True), ("./z", False)]
    assert len(os.listdir("/proc/self/fd")) == before - 1  # each level's descriptor closed, and the top


def test_stopped_early_it_closes_what_it_opened(tmp_path: Path) -> None:
    top = tree(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    levels = walk(".", top, 10)
    for level in levels:
        if level.path == "./a/b":
            break
    levels.close()  # type: ignore[attr-defined]
    assert len(os.listdir("/proc/self/fd")) == before
    os.close(top)
