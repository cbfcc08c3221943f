"""`watcher.page.thumbnails`: a small JPEG, a pixel bound said in the log, a cache that a planted symlink
cannot redirect, and Pillow not loaded by an agent that makes none."""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.images import png_bytes, png_chunk
from watcher.page.thumbnails import (
    MAX_PIXELS,
    NoThumbnail,
    Thumbnails,
    cache_key,
    make_thumbnail,
    webp_canvas,
)


def fd_of(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_a_thumbnail_is_a_jpeg_of_at_most_320_pixels_a_side(tmp_path: Path) -> None:
    wide = Image.new("RGBA", (1000, 400), (10, 200, 30, 128))
    out = io.BytesIO()
    wide.save(out, "PNG")
    fd = fd_of(tmp_path / "wide.png", out.getvalue())
    try:
        os.lseek(fd, 100, os.SEEK_SET)  # read from the start whatever the offset
        with Image.open(io.BytesIO(make_thumbnail(fd, "wide.png"))) as image:
            assert image.format == "JPEG" and image.size == (320, 128)
    finally:
        os.close(fd)


def header_only_png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def test_more_pixels_than_the_bound_are_refused_before_decoding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fd = fd_of(tmp_path / "bomb.png", header_only_png(30000, 30000))
    try:
        with caplog.at_level(logging.WARNING, "watcher"), pytest.raises(NoThumbnail):
            make_thumbnail(fd, "bomb.png")
    finally:
        os.close(fd)
    assert "bomb.png: 30000 x 30000 pixels, more than the 40000000" in caplog.text
    assert 8000 * 5000 <= MAX_PIXELS < 30000 * 30000


def test_what_pillow_cannot_read_is_no_thumbnail(tmp_path: Path) -> None:
    fd = fd_of(tmp_path / "x.png", b"\x89PNG\r\n\x1a\nnot really")
    try:
        with pytest.raises(NoThumbnail):
            make_thumbnail(fd, "x.png")
    finally:
        os.close(fd)


def test_a_png_broken_after_its_header_is_no_thumbnail_and_is_not_decoded_again(tmp_path: Path) -> None:
    """Pillow's decoders raise more than OSError on broken data (here SyntaxError, once the image is
    being read): each is no thumbnail, remembered, never a 500 and an error line per request."""
    out = io.BytesIO()
    Image.new("RGB", (300, 150), (10, 220, 30)).save(out, "PNG")
    data = bytearray(out.getvalue())
    assert data[37:41] == b"IDAT"
    length = int.from_bytes(data[33:37], "big")
    data[33:37] = (length - 88).to_bytes(4, "big")  # the next chunk is read from inside the image data
    fd = fd_of(tmp_path / "broken.png", bytes(data))
    thumbnails = Thumbnails(tmp_path / "cache")
    try:
        with pytest.raises(NoThumbnail, match="SyntaxError"):
            thumbnails.get("k", fd, "broken.png")
        with pytest.raises(NoThumbnail, match="none before"):
            thumbnails.get("k", fd, "broken.png")
    finally:
        os.close(fd)


def test_the_cache_is_read_and_written_without_following_a_symlink(tmp_path: Path) -> None:
    cache = Thumbnails(tmp_path / "thumbnails")
    st = os.stat(tmp_path)
    key = cache_key("/drop", "a.png", st)
    assert key != cache_key("/drop", "b.png", st)
    fd = fd_of(tmp_path / "a.png", png_bytes(1, size=400))
    try:
        made = cache.get(key, fd, "a.png")
        assert cache.get(key, -1, "a.png") == made  # from the cache: the image is not read again
        secret = tmp_path / "secret"
        secret.write_bytes(b"SECRET")
        planted = tmp_path / "thumbnails" / f"{key}.jpg"
        planted.unlink()
        planted.symlink_to(secret)
        assert cache.get(key, fd, "a.png") == made
        assert not planted.is_symlink() and secret.read_bytes() == b"SECRET"
        assert oct((tmp_path / "thumbnails").stat().st_mode & 0o777) == "0o700"
    finally:
        os.close(fd)


def test_an_agent_without_thumbnails_never_imports_pillow() -> None:
    code = "import sys, watcher.agent, watcher.page.server; print('PIL' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_cache_keeps_its_newest_thumbnails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("watcher.page.thumbnails.MAX_KEPT", 50)
    cache = Thumbnails(tmp_path / "thumbnails")
    fd = fd_of(tmp_path / "a.png", png_bytes(1, size=20))
    try:
        for n in range(100):
            cache.get(f"{n:040d}", fd, "a.png")
            os.utime(tmp_path / "thumbnails" / f"{n:040d}.jpg", ns=(n * 10**9, n * 10**9))
    finally:
        os.close(fd)
    kept = sorted(p.name for p in (tmp_path / "thumbnails").iterdir())
    assert kept == [f"{n:040d}.jpg" for n in range(50, 100)]


@pytest.mark.parametrize(
    ("options", "mode"),
    [({"lossless": False}, "RGB"), ({"lossless": True}, "RGB"), ({"lossless": False}, "RGBA")],
)
def test_a_webps_canvas_is_read_from_its_header_as_pillow_reads_it(
    options: dict[str, bool], mode: str
) -> None:
    out = io.BytesIO()
    image = Image.new(mode, (301, 77))
    if mode == "RGBA":  # with alpha and an animation: a VP8X chunk first
        image.save(out, "WEBP", save_all=True, append_images=[Image.new(mode, (301, 77))], **options)
    else:
        image.save(out, "WEBP", **options)
    assert webp_canvas(out.getvalue()[:30]) == (301, 77) == Image.open(out).size
    assert webp_canvas(b"RIFF\0\0\0\0WEBPJUNK" + bytes(14)) is None
