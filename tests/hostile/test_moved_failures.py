"""failed_dir lies inside the drop folder, where droppers write: what `status` and the metrics read from it
is reached without following a symlink, so a planted link cannot make them list another folder's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers.maze import make_chain, peel
from watcher.core.folders import Folder
from watcher.disk.moved_failures import MAX_DEPTH, moved_failures


def fail(image: Path) -> None:
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"x")
    (image.parent / (image.name + ".error.json")).write_text(json.dumps({"error": "secret reason"}))


def test_a_failed_dir_swapped_for_a_link_lists_nothing_behind_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    fail(secret / "payroll.png")
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "failed").symlink_to(secret)
    folder = Folder(str(drop), "1", recursive=True, polling=False, failed_dir=str(drop / "failed"))
    assert list(moved_failures(folder, read=True)) == []


def test_links_inside_failed_dir_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    fail(secret / "payroll.png")
    failed = tmp_path / "drop" / "failed"
    fail(failed / "mine.png")
    (failed / "sub").symlink_to(secret)  # a folder link
    (failed / "link.png").symlink_to(secret / "payroll.png")  # a file link beside a planted record
    (failed / "link.png.error.json").write_text("{}")
    folder = Folder(str(tmp_path / "drop"), "1", recursive=True, polling=False, failed_dir=str(failed))
    assert [path for path, _ in moved_failures(folder, read=True)] == [str(failed / "mine.png")]


def test_a_maze_in_failed_dir_is_walked_without_recursion_and_with_few_descriptors(tmp_path: Path) -> None:
    failed = tmp_path / "drop" / "failed"
    fail(failed / "mine.png")
    # A dropper's chain of 1,100 folders (deeper than Python's recursion limit), a failure at its end.
    make_chain(failed, 1100, ("deep.png", "deep.png.error.json"))
    folder = Folder(str(tmp_path / "drop"), "1", recursive=True, polling=False, failed_dir=str(failed))
    before = len(os.listdir("/proc/self/fd"))
    most = 0
    found = []
    try:
        for path, _ in moved_failures(folder, read=True):
            most = max(most, len(os.listdir("/proc/self/fd")) - before)
            found.append(path)
    finally:
        peel(failed)  # pytest's own clean-up (shutil.rmtree) recurses too
    assert found == [str(failed / "mine.png")]
    assert most <= MAX_DEPTH + 2
