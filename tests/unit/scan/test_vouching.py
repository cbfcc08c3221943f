"""Which done files the index vouches for, against real files: a row vouches only while the file and its
sidecar are the very ones it recorded (size, mtime, inode, change time; sidecar inode and change time)
and the folder's account is the row's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.scan.vouching import check_directory
from watcher.state.index import DoneRow

ACCOUNT = "123456"


def row_of(folder: Path, name: str, account: str = ACCOUNT) -> DoneRow:
    """The row the index keeps for `name` once its sidecar is written."""
    st = os.stat(folder / name)
    sidecar = os.stat(folder / f"{name}.json")
    return (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        account,
        sidecar.st_ino,
        sidecar.st_ctime_ns,
        st.st_ctime_ns,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"image " + name.encode())
        (tmp_path / f"{name}.json").write_text('{"fileID": "x"}')
    return tmp_path


@pytest.fixture
def dir_fd(folder: Path) -> Iterator[int]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def check(
    folder: Path, dir_fd: int, known: dict[str, DoneRow], account: str = ACCOUNT
) -> tuple[set[str], list[str]]:
    return check_directory(dir_fd, set(os.listdir(folder)), known, account)


def test_a_file_and_sidecar_as_recorded_are_vouched_for(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png"), "b.png": row_of(folder, "b.png")}
    assert check(folder, dir_fd, known) == ({"a.png", "b.png"}, [])


def test_known_names_no_longer_listed_have_vanished(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png"), "b.png": row_of(folder, "b.png")}
    (folder / "b.png").unlink()
    assert check(folder, dir_fd, known) == ({"a.png"}, ["b.png"])


def test_new_bytes_with_size_and_mtime_put_back_are_not_vouched_for(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png")}
    st = os.stat(folder / "a.png")
    with open(folder / "a.png", "r+b") as f:
        f.write(b"IMAGE")  # same size
    os.utime(folder / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back, as cp -p does
    assert os.stat(folder / "a.png").st_size == known["a.png"][0]
    assert check(folder, dir_fd, known) == (set(), []), "the change time moved: no one can set it back"


def test_a_file_replaced_by_another_is_not_vouched_for(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png")}
    st = os.stat(folder / "a.png")
    (folder / "new").write_bytes((folder / "a.png").read_bytes())
    os.utime(folder / "new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(folder / "new", folder / "a.png")
    assert check(folder, dir_fd, known) == (set(), [])


def test_a_sidecar_edited_in_place_or_replaced_is_not_vouched_for(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png"), "b.png": row_of(folder, "b.png")}
    os.chmod(folder / "a.png.json", 0o600)  # any change to the inode moves its change time
    (folder / "other").write_text('{"fileID": "y"}')
    os.replace(folder / "other", folder / "b.png.json")
    assert check(folder, dir_fd, known) == (set(), [])


def test_without_its_sidecar_a_file_is_not_vouched_for(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png")}
    (folder / "a.png.json").unlink()
    assert check(folder, dir_fd, known) == (set(), [])


def test_a_row_for_another_account_is_not_vouched_for(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png", account="654321")}
    assert check(folder, dir_fd, known) == (set(), [])
    known = {"a.png": row_of(folder, "a.png", account="")}
    assert check(folder, dir_fd, known, account="") == ({"a.png"}, []), "the token's only account is ''"


def test_a_row_without_its_sidecars_inode_is_not_vouched_for(folder: Path, dir_fd: int) -> None:
    size, mtime, ino, account, _, record_ctime, ctime = row_of(folder, "a.png")
    assert check(folder, dir_fd, {"a.png": (size, mtime, ino, account, 0, record_ctime, ctime)}) == (
        set(),
        [],
    )


def test_a_link_put_at_the_name_is_not_followed(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png")}
    os.rename(folder / "a.png", folder / "moved.png")
    (folder / "a.png").symlink_to(folder / "moved.png")
    assert check(folder, dir_fd, known) == (set(), [])


def test_a_file_gone_since_the_listing_is_neither_vouched_for_nor_an_error(folder: Path, dir_fd: int) -> None:
    known = {"a.png": row_of(folder, "a.png"), "b.png": row_of(folder, "b.png")}
    names = set(os.listdir(folder))
    (folder / "a.png").unlink()
    (folder / "b.png.json").unlink()
    assert check_directory(dir_fd, names, known, ACCOUNT) == (set(), [])
