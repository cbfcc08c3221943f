"""Unit tests for `watcher.disk.files`: reaching a path below its watched folder without ever leaving it."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers.images import png_bytes
from watcher.core.folders import Folder, folder_containing
from watcher.core.messages import FileState
from watcher.core.signature import signature_of
from watcher.disk.files import (
    NotRegularFileError,
    OutsideRootError,
    components_below,
    holding_roots,
    looks_complete_on_disk,
    lstat_beneath,
    open_beneath,
    open_regular_file,
    open_regular_file_and_stat,
)
from watcher.scan.inventory import DiskProbe

ACCOUNT = "123456"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A watched folder `drop` with `sub/a.png`, and an `outside` folder holding its own `a.png`."""
    root = tmp_path / "drop"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(b"secret")
    return root, outside


def read_all(fd: int) -> bytes:
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_open_beneath_opens_a_file_below_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert read_all(open_beneath(str(root), str(root / "sub" / "a.png"), os.O_RDONLY)) == b"inside"
    assert read_all(open_regular_file(str(root / "sub" / "a.png"), str(root))) == b"inside"


def test_open_beneath_refuses_a_symlinked_intermediate_folder(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "sub").rename(root.parent / "away")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    path = str(root / "sub" / "a.png")
    assert Path(path).read_bytes() == b"secret"  # what a plain open, even with O_NOFOLLOW, would read

    with pytest.raises(OSError) as raised:
        open_beneath(str(root), path, os.O_RDONLY)
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(OSError) as raised:
        open_regular_file(path, str(root))
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(OSError) as raised:
        lstat_beneath(str(root), path)
    assert raised.value.errno == errno.ELOOP
    with pytest.raises(OSError):
        looks_complete_on_disk(path, 6, str(root))


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_holding_roots_opens_the_watched_folder_once_and_closes_it_after(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    for n in range(3):
        (root / f"{n}.png").write_bytes(b"x" * n)
    before = _open_descriptors()
    with holding_roots():
        sizes = [lstat_beneath(str(root), str(root / f"{n}.png")).st_size for n in range(3)]
        assert read_all(open_beneath(str(root), str(root / "sub" / "a.png"), os.O_RDONLY)) == b"inside"
        assert _open_descriptors() == before + 1  # the watched folder, held: nothing else left open
        with holding_roots():  # an enclosing hold keeps its folders until it ends
            assert lstat_beneath(str(root), str(root / "0.png")).st_size == 0
        assert _open_descriptors() == before + 1
    assert sizes == [0, 1, 2]
    assert _open_descriptors() == before


def test_holding_roots_still_refuses_a_subfolder_swapped_for_a_symlink(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    path = str(root / "sub" / "a.png")
    with holding_roots():
        assert lstat_beneath(str(root), path).st_size == len(b"inside")
        (root / "sub").rename(root.parent / "away")
        (root / "sub").symlink_to(outside, target_is_directory=True)
        with pytest.raises(OSError) as raised:
            lstat_beneath(str(root), path)
        assert raised.value.errno == errno.ELOOP


def test_a_watched_folder_replaced_after_a_hold_is_the_new_one_at_the_next(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "old.png").write_bytes(b"old")
    with holding_roots():
        assert lstat_beneath(str(root), str(root / "old.png")).st_size == 3
    root.rename(root.parent / "drop-before")
    root.mkdir()
    (root / "new.png").write_bytes(b"new!")
    with holding_roots():
        assert lstat_beneath(str(root), str(root / "new.png")).st_size == 4
        with pytest.raises(FileNotFoundError):
            lstat_beneath(str(root), str(root / "old.png"))


def test_a_symlink_deeper_down_is_refused_too(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "sub" / "deeper").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError) as raised:
        open_beneath(str(root), str(root / "sub" / "deeper" / "a.png"), os.O_RDONLY)
    assert raised.value.errno == errno.ELOOP


def test_open_beneath_refuses_a_symlinked_final_component(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "link.png").symlink_to(outside / "a.png")
    with pytest.raises(OSError) as raised:
        open_beneath(str(root), str(root / "link.png"), os.O_RDONLY)
    assert raised.value.errno == errno.ELOOP
    # lstat sees the link itself, never its target.
    assert stat.S_ISLNK(lstat_beneath(str(root), str(root / "link.png")).st_mode)


@pytest.mark.parametrize(
    "relative",
    ["../outside/a.png", "sub/../../outside/a.png", "sub/..", "..", ""],
)
def test_open_beneath_refuses_dot_dot_and_the_root_itself(tree: tuple[Path, Path], relative: str) -> None:
    root, _ = tree
    with pytest.raises(OutsideRootError) as raised:
        open_beneath(str(root), f"{root}/{relative}", os.O_RDONLY)
    assert raised.value.errno == errno.EXDEV


def test_open_beneath_refuses_a_path_outside_the_root(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    with pytest.raises(OutsideRootError):
        open_beneath(str(root), str(outside / "a.png"), os.O_RDONLY)
    # A sibling whose name merely starts with the root's name is not below it.
    sibling = root.parent / (root.name + "-other")
    sibling.mkdir()
    (sibling / "a.png").write_bytes(b"x")
    with pytest.raises(OutsideRootError):
        open_beneath(str(root), str(sibling / "a.png"), os.O_RDONLY)


def test_components_below_skips_empty_and_dot_names() -> None:
    assert components_below("/w/drop", "/w/drop/sub//./a.png") == ["sub", "a.png"]
    assert components_below("/w/drop/", "/w/drop/a.png") == ["a.png"]
    assert components_below("/", "/a.png") == ["a.png"]


def test_an_intermediate_folder_turned_into_a_file_is_not_a_directory(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "sub" / "a.png").unlink()
    (root / "sub").rmdir()
    (root / "sub").write_bytes(b"a file now")
    with pytest.raises(NotADirectoryError):
        open_beneath(str(root), str(root / "sub" / "a.png"), os.O_RDONLY)


def test_a_vanished_intermediate_folder_is_file_not_found(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(FileNotFoundError):
        open_beneath(str(root), str(root / "gone" / "a.png"), os.O_RDONLY)


@pytest.mark.timeout(5)
def test_open_regular_file_beneath_refuses_a_fifo_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.mkfifo(root / "sub" / "pipe.png")
    with pytest.raises(NotRegularFileError):
        open_regular_file(str(root / "sub" / "pipe.png"), str(root))


def test_a_file_opened_to_be_read_whole_reads_blocking_and_a_look_need_not(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    path = str(root / "sub" / "a.png")
    fd = open_regular_file(path, str(root))  # the upload's descriptor: never an EAGAIN mid-body
    try:
        assert os.get_blocking(fd)
    finally:
        os.close(fd)
    fd, _ = open_regular_file_and_stat(path, str(root), blocking=False)  # a few bytes, for a look
    try:
        assert not os.get_blocking(fd) and os.pread(fd, 6, 0) == b"inside"
    finally:
        os.close(fd)


def test_the_root_itself_may_be_reached_through_a_symlink(tree: tuple[Path, Path]) -> None:
    # The configured folder is trusted as named; only what lies below it is walked without following.
    root, _ = tree
    alias = root.parent / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert read_all(open_beneath(str(alias), str(alias / "sub" / "a.png"), os.O_RDONLY)) == b"inside"


def test_without_a_root_the_path_is_trusted_as_given(tree: tuple[Path, Path]) -> None:
    # `minimax-watcher upload FILE` names the file itself: its folders may be symlinks, the file may not.
    root, outside = tree
    (root / "via").symlink_to(outside, target_is_directory=True)
    assert read_all(open_regular_file(str(root / "via" / "a.png"))) == b"secret"
    (outside / "link.png").symlink_to(outside / "a.png")
    with pytest.raises(OSError) as raised:
        open_regular_file(str(outside / "link.png"))
    assert raised.value.errno == errno.ELOOP


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder; needs an ordinary user")
def test_a_search_only_folder_still_lets_a_known_name_be_opened(tree: tuple[Path, Path]) -> None:
    # A drop box may be write+search only (no listing); reaching a name in it needs no read permission.
    root, _ = tree
    os.chmod(root / "sub", 0o311)
    try:
        with pytest.raises(PermissionError):
            os.listdir(root / "sub")
        assert read_all(open_regular_file(str(root / "sub" / "a.png"), str(root))) == b"inside"
    finally:
        os.chmod(root / "sub", 0o755)


# ---- the scheduler's probe looks at paths the same way ---------------------------------------------


def probe_for(root: Path) -> DiskProbe:
    folder = Folder(str(root), ACCOUNT, recursive=True, polling=False)
    return DiskProbe(lambda path: folder_containing(path, [folder]))


def test_the_probe_sees_nothing_through_a_symlinked_subfolder(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (outside / "a.png").write_bytes(png_bytes(1))
    probe = probe_for(root)
    path = str(root / "sub" / "a.png")
    assert probe.observe(path) is not None

    (root / "sub").rename(root.parent / "away")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    signature = signature_of(os.stat(path))  # what following the symlink would find

    assert probe.observe(path) is None
    assert probe.looks_complete(path, signature.size) is False
    # A sidecar beside the outside file that would mark it done is never read either.
    planted = {"fileID": "planted", "sha256": "00", "account": ACCOUNT}
    planted |= {"size": signature.size, "mtime_ns": signature.mtime_ns}
    (outside / "a.png.json").write_text(json.dumps(planted))
    assert probe.classify(path, signature, ACCOUNT).state is FileState.PENDING


def test_the_probe_looks_below_its_folder_as_before(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    data = png_bytes(3)
    (root / "sub" / "a.png").write_bytes(data)
    probe = probe_for(root)
    path = str(root / "sub" / "a.png")
    seen = probe.observe(path)
    assert seen is not None and seen.signature.size == len(data)
    assert probe.looks_complete(path, len(data)) is True
    record = {"fileID": "user:1-minimax:2-file:3", "sha256": "00", "account": ACCOUNT}
    record |= {"size": seen.signature.size, "mtime_ns": seen.signature.mtime_ns}
    (root / "sub" / "a.png.json").write_text(json.dumps(record))
    assert probe.classify(path, seen.signature, ACCOUNT).state is FileState.DONE
    assert probe.observe(str(root.parent / "outside" / "a.png")) is None, "a path in no watched folder"
