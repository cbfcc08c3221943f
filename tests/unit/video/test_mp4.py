"""Unit tests for `watcher.video.mp4`: hand-made box layouts written to real files, checked by pread."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.helpers.images import png_bytes
from tests.helpers.media import box, ftyp_box, moov_box, mp4_bytes
from watcher.video.mp4 import MAX_BOXES, looks_like_mp4


def check(tmp_path: Path, data: bytes, size: int | None = None) -> bool:
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return looks_like_mp4(fd, len(data) if size is None else size)
    finally:
        os.close(fd)


def test_a_plain_mp4_passes(tmp_path: Path) -> None:
    assert check(tmp_path, mp4_bytes())
    assert check(tmp_path, mp4_bytes(index_first=False))  # moov after mdat, as ffmpeg writes by default


def test_64_bit_sizes_pass(tmp_path: Path) -> None:
    assert check(tmp_path, mp4_bytes(large_mdat=True))
    assert check(tmp_path, mp4_bytes(large_ftyp=True))


def test_a_last_box_running_to_the_end_passes(tmp_path: Path) -> None:
    to_end = ftyp_box() + moov_box() + struct.pack(">I", 0) + b"mdat" + bytes(300)
    assert check(tmp_path, to_end)


def test_a_to_end_box_still_needs_its_header_inside_the_file(tmp_path: Path) -> None:
    # A size-0 box header cut after its size field: not a box at all.
    assert not check(tmp_path, ftyp_box() + moov_box() + struct.pack(">I", 0) + b"md")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<!DOCTYPE html><html><body>Access denied</body></html>\n", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(png_bytes(), id="png"),
        pytest.param(box(b"moov", b"") + ftyp_box() + box(b"mdat", bytes(10)), id="ftyp-not-first"),
        pytest.param(ftyp_box() + box(b"mdat", bytes(500)), id="no-moov"),
        pytest.param(ftyp_box(b"heic", (b"mif1", b"heic")) + moov_box(), id="heif-still"),
        pytest.param(mp4_bytes() + b"\x00\x00", id="trailing-bytes"),
        pytest.param(mp4_bytes()[:-1], id="truncated-by-one"),
        pytest.param(mp4_bytes()[:100], id="truncated-inside-a-box"),
        pytest.param(
            ftyp_box() + moov_box() + struct.pack(">I", 4) + b"mdat" + bytes(8), id="size-below-header"
        ),
        pytest.param(
            ftyp_box() + moov_box() + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 0) + bytes(8),
            id="64-bit-zero",
        ),
        pytest.param(
            ftyp_box() + moov_box() + struct.pack(">I", 16) + b"\x00\x01\x02\x03" + bytes(8),
            id="binary-box-type",
        ),
        pytest.param(struct.pack(">I", 0) + b"ftyp" + bytes(24), id="zero-sized-ftyp"),
    ],
)
def test_what_is_not_an_mp4_fails(tmp_path: Path, data: bytes) -> None:
    assert not check(tmp_path, data)


def test_a_size_that_is_not_the_files_fails(tmp_path: Path) -> None:
    data = mp4_bytes()
    assert not check(tmp_path, data, size=len(data) + 10)
    assert not check(tmp_path, data, size=len(data) - 10)


def test_a_box_claiming_more_than_the_file_fails(tmp_path: Path) -> None:
    lying = ftyp_box() + moov_box() + struct.pack(">I", 1 << 30) + b"mdat" + bytes(100)
    assert not check(tmp_path, lying)


def test_the_walk_is_bounded(tmp_path: Path) -> None:
    # A file of more tiny boxes than MAX_BOXES is refused rather than walked without end.
    many = ftyp_box() + moov_box() + box(b"free", b"") * (MAX_BOXES + 1)
    assert not check(tmp_path, many)
    # A fragmented MP4's few hundred boxes are walked to the end.
    fragments = (box(b"moof", bytes(16)) + box(b"mdat", bytes(32))) * 300
    assert check(tmp_path, ftyp_box() + moov_box() + fragments)


def test_only_box_headers_are_read(tmp_path: Path) -> None:
    # A 64 GB sparse file whose mdat holds nothing on disk: reading it whole would take minutes.
    path = tmp_path / "huge.mp4"
    head = ftyp_box() + moov_box()
    mdat_size = 64 << 30
    with open(path, "wb") as out:
        out.write(head + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", mdat_size))
        out.truncate(len(head) + mdat_size)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert looks_like_mp4(fd, len(head) + mdat_size)
    finally:
        os.close(fd)


def test_an_unreadable_descriptor_fails(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # pread on a folder: EISDIR
    try:
        assert not looks_like_mp4(fd, 4096)
    finally:
        os.close(fd)
