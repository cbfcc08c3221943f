"""Polling that costs what changed (issue 21, item 16): a poll stats each directory and lists again only
those whose stamp moved; a file rewritten in place is found by the periodic full listing."""

from __future__ import annotations

import os
from pathlib import Path

from watcher.core.folders import Folder
from watcher.core.messages import EventKind
from watcher.watch.polling import PolledTree


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def file(self, kind: EventKind, path: str) -> None:
        self.events.append((kind.value, path))

    def directory_appeared(self, path: str) -> None:
        self.events.append(("dir", path))

    def root_gone(self) -> None:
        self.events.append(("root_gone", ""))


def tree(root: Path, full_every: float = 3600.0) -> tuple[PolledTree, Seen]:
    seen = Seen()
    # racy_ns=0: the test's directories are seconds old at most, and their stamps are in nanoseconds.
    polled = PolledTree(Folder(str(root), None, True, True), seen, lambda: full_every, racy_ns=0)
    polled.first_listing()
    return polled, seen


def test_a_poll_of_a_tree_where_nothing_changed_lists_no_directory(tmp_path: Path) -> None:
    for n in range(2000):
        (tmp_path / f"d{n}").mkdir()
    (tmp_path / "d7" / "old.png").write_bytes(b"x")
    polled, seen = tree(tmp_path)
    for _ in range(3):
        polled.poll()
    assert polled.listed == 0 and seen.events == []

    (tmp_path / "d5" / "new.png").write_bytes(b"x")
    (tmp_path / "d7" / "old.png").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inside.png").write_bytes(b"x")
    polled.poll()
    assert sorted(seen.events) == sorted([
        ("write", f"{tmp_path}/d5/new.png"),
        ("deleted", f"{tmp_path}/d7/old.png"),
        ("dir", f"{tmp_path}/sub"),
        ("write", f"{tmp_path}/sub/inside.png"),
    ])  # fmt: skip
    assert polled.listed == 3  # the root, d5 and d7; sub was listed as it appeared


def test_a_file_rewritten_in_place_is_found_by_the_full_listing_and_a_removed_folder_takes_its_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    image = tmp_path / "a" / "x.png"
    image.write_bytes(b"x")
    polled, seen = tree(tmp_path, full_every=0.0)  # every poll is a full one
    with image.open("r+b") as f:
        f.write(b"yy")  # the directory's stamp does not move
    polled.poll()
    assert seen.events == [("write", str(image))]
    image.unlink()
    (tmp_path / "a").rmdir()
    polled.poll()
    assert seen.events[1:] == [("deleted", str(image))]
    os.rmdir(tmp_path)
    polled.poll()
    assert seen.events[-1] == ("root_gone", "")


def test_a_folder_replaced_by_another_under_its_name_is_reported_gone(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    root.mkdir()
    polled, seen = tree(root)
    root.rename(tmp_path / "old")
    root.mkdir()
    polled.poll()
    assert seen.events == [("root_gone", "")]
