"""Unit tests for `watcher.media`: candidate names, content sniffing, completeness, safe opening."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import pytest

from tests.helpers.images import grey_png, jpeg_bytes, png_bytes, webp_bytes
from watcher.files import NotRegularFileError, is_regular_file_mode, open_regular_file, read_head_and_tail
from watcher.media import (
    MAX_UPLOAD_BYTES,
    PNG_IEND_CHUNK,
    SNIFF_BYTES,
    TAIL_BYTES,
    error_record_path,
    is_candidate_name,
    looks_complete,
    sidecar_path,
    sniff_content_type,
)


def head_tail(data: bytes) -> tuple[bytes, bytes, int]:
    return data[:SNIFF_BYTES], data[-TAIL_BYTES:], len(data)


def test_png_helper_is_a_real_png() -> None:
    png = grey_png()
    assert png.endswith(PNG_IEND_CHUNK)
    # Every chunk's CRC checks out, and IDAT decompresses to the rows we wrote.
    pos, chunks = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks.append((kind, data))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert zlib.decompress(chunks[1][1]) == b"\x00\x00\x01" * 2


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "cat.png",
        "CAT.PNG",
        "photo.Jpg",
        "photo.jpg",
        "scan.JPEG",
        "scan.jpeg",
        "pic.webp",
        "pic.WebP",
        "my photo (1).png",
        "archive.tmp.png",  # only the end of the name counts
    ],
)
def test_candidate_names(name: str) -> None:
    assert is_candidate_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".png",
        ".cat.png",
        ".cat.png.swp",
        "cat.png~",
        "cat.png.tmp",
        "cat.png.TMP",
        "cat.png.part",
        "cat.png.partial",
        "cat.png.crdownload",
        "cat.png.download",
        "cat.png.swp",
        "cat.png.json",
        "cat.png.error.json",
        "notes.json",
        "cat.gif",
        "cat.tiff",
        "cat",
        "png",
        "catpng",
    ],
)
def test_non_candidate_names(name: str) -> None:
    assert not is_candidate_name(name)


def test_record_paths_sit_beside_the_image() -> None:
    assert sidecar_path("/d/cat.png") == "/d/cat.png.json"
    assert error_record_path("/d/cat.png") == "/d/cat.png.error.json"
    # A sidecar is never itself a candidate.
    assert not is_candidate_name(os.path.basename(sidecar_path("/d/cat.png")))
    assert not is_candidate_name(os.path.basename(error_record_path("/d/cat.png")))


# --- sniffing ------------------------------------------------------------------------------------


def test_sniff_png() -> None:
    assert sniff_content_type(png_bytes()[:SNIFF_BYTES]) == "image/png"


def test_sniff_jpeg() -> None:
    assert sniff_content_type(jpeg_bytes()[:SNIFF_BYTES]) == "image/jpeg"


def test_sniff_webp_is_sent_as_jpeg() -> None:
    assert sniff_content_type(webp_bytes()[:SNIFF_BYTES]) == "image/jpeg"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, world",
        b"GIF89a\x01\x00\x01\x00\x00\x00",
        b"GIF87a\x01\x00\x01\x00\x00\x00",
        b"\x89PNG",  # a truncated signature
        b"\x89PNG\r\n\x1a",
        b"\xff\xd8",  # SOI without the marker byte after it
        b"RIFF\x24\x00\x00\x00WAVE",  # RIFF, but audio
        b"RIFF\x24\x00\x00\x00WEB",  # too short to say
        b"BM6\x00\x00\x00\x00\x00\x00\x006\x00",  # BMP
    ],
)
def test_sniff_rejects_everything_else(head: bytes) -> None:
    assert sniff_content_type(head) is None


# --- completeness --------------------------------------------------------------------------------


def test_png_with_iend_looks_complete() -> None:
    assert looks_complete(*head_tail(png_bytes()))


def test_png_without_iend_does_not_look_complete() -> None:
    truncated = png_bytes()[: -len(PNG_IEND_CHUNK)]
    assert not looks_complete(*head_tail(truncated))
    half = png_bytes()[: len(png_bytes()) // 2]
    assert not looks_complete(*head_tail(half))


def test_jpeg_with_and_without_eoi() -> None:
    assert looks_complete(*head_tail(jpeg_bytes()))
    assert not looks_complete(*head_tail(jpeg_bytes()[:-2]))
    assert not looks_complete(*head_tail(jpeg_bytes()[:-1]))


def test_webp_riff_size_must_match_the_file_size() -> None:
    webp = webp_bytes()
    assert looks_complete(*head_tail(webp))
    # The header promises more than the file holds: still being written.
    assert not looks_complete(*head_tail(webp_bytes(declared_extra=100)))
    # Same header, but the file is shorter than its header says.
    head, tail, size = head_tail(webp)
    assert not looks_complete(head, tail, size - 1)


def test_unknown_formats_never_look_complete() -> None:
    gif = b"GIF89a" + b"\x00" * 20 + b"\x3b"
    assert not looks_complete(*head_tail(gif))


# --- opening safely ------------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_regular_file_returns_a_blocking_readable_fd(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes())
    fd = open_regular_file(str(path))
    try:
        assert os.get_blocking(fd)
        assert os.read(fd, 8) == b"\x89PNG\r\n\x1a\n"
    finally:
        os.close(fd)


@pytest.mark.timeout(5)
def test_open_regular_file_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    before = _open_fds()
    with pytest.raises(NotRegularFileError):
        open_regular_file(str(fifo))
    assert _open_fds() == before  # the descriptor opened to look was closed again


def test_open_regular_file_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.png"
    target.write_bytes(png_bytes())
    link = tmp_path / "link.png"
    link.symlink_to(target)
    with pytest.raises(OSError) as info:
        open_regular_file(str(link))
    assert info.value.errno == errno.ELOOP


def test_open_regular_file_refuses_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    before = _open_fds()
    with pytest.raises(OSError) as info:
        open_regular_file(str(folder))
    assert isinstance(info.value, NotRegularFileError) or info.value.errno == errno.EISDIR
    assert _open_fds() == before


def test_open_regular_file_missing_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_regular_file(str(tmp_path / "gone.png"))


def test_is_regular_file_mode_on_real_entries(tmp_path: Path) -> None:
    regular = tmp_path / "a.png"
    regular.write_bytes(b"x")
    link = tmp_path / "b.png"
    link.symlink_to(regular)
    fifo = tmp_path / "c.png"
    os.mkfifo(fifo)
    folder = tmp_path / "d.png"
    folder.mkdir()
    assert is_regular_file_mode(os.lstat(regular).st_mode)
    assert not is_regular_file_mode(os.lstat(link).st_mode)
    assert not is_regular_file_mode(os.lstat(fifo).st_mode)
    assert not is_regular_file_mode(os.lstat(folder).st_mode)


def test_read_head_and_tail_of_a_real_file(tmp_path: Path) -> None:
    png = png_bytes(size=4)
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    head, tail, st = read_head_and_tail(str(path))
    assert head == png[:SNIFF_BYTES]
    assert tail == png[-TAIL_BYTES:]
    assert st.st_size == len(png)
    assert looks_complete(head, tail, st.st_size)


def test_read_head_and_tail_of_an_empty_and_a_tiny_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert read_head_and_tail(str(empty))[:2] == (b"", b"")
    tiny = tmp_path / "tiny.jpg"
    tiny.write_bytes(b"\xff\xd8\xff\xd9")
    head, tail, st = read_head_and_tail(str(tiny))
    assert (head, tail, st.st_size) == (b"\xff\xd8\xff\xd9", b"\xff\xd8\xff\xd9", 4)


def test_max_upload_is_five_decimal_gigabytes() -> None:
    assert MAX_UPLOAD_BYTES == 5_000_000_000
