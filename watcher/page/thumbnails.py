"""Thumbnails for the page: a JPEG of at most 320 px a side, made with Pillow (imported on first use: an
agent without the page never loads it) from an image already opened safely, and cached in
`<state folder>/thumbnails/` under a name that changes with the file's bytes."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import stat
import struct
import threading
from collections import OrderedDict
from pathlib import Path

from watcher.disk.files import write_all
from watcher.log_fields import say

log = logging.getLogger("watcher")

THUMBNAIL_SIDE = 320
# An image of more pixels is not decoded (a decompression bomb: a small PNG of 30000x30000 would take
# gigabytes); 40 million is a 7,700 x 5,200 photo.
MAX_PIXELS = 40_000_000
MAX_THUMBNAIL_BYTES = 1 << 20
# A larger image gets none: Pillow reads a WebP whole into memory (a sparse file costs a dropper nothing).
MAX_SOURCE_BYTES = 256 << 20
# Only what the agent uploads: a dropper can plant a sidecar beside any bytes, and Pillow would otherwise
# try each of its decoders on them (EPS runs Ghostscript).
FORMATS = ("PNG", "JPEG", "WEBP")
MAX_KEPT = 2000  # thumbnails in the cache; beyond it the oldest go (a page shows 24 at a time)
MAX_FAILED = 2000  # versions remembered to give none, so that asking again costs no decoding or log line
_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class NoThumbnail(Exception):
    """The image cannot be made into a thumbnail (too large, not an image Pillow reads)."""


def cache_key(folder: str, rel: str, st: os.stat_result) -> str:
    """A name for this version of the file: a change of its bytes, inode or change time makes a new one."""
    text = f"{folder}\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]


class Thumbnails:
    """Made one at a time (a lock: decoding is the costly part), kept in `directory`."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = threading.Lock()
        self._written = 0
        self._failed: OrderedDict[str, str] = OrderedDict()  # key: why

    def get(self, key: str, image_fd: int, shown: str) -> bytes:
        """The thumbnail for `key`, from the cache or made from `image_fd` (read from its start; not
        closed here). Raises `NoThumbnail`; `shown` names the image in the log."""
        cached = self._read(key)
        if cached is not None:
            return cached
        with self._lock:
            if key in self._failed:
                raise NoThumbnail(f"none before: {self._failed[key]}")
            try:
                data = make_thumbnail(image_fd, shown)
            except NoThumbnail as exc:
                self._failed[key] = str(exc)
                if len(self._failed) > MAX_FAILED:
                    self._failed.popitem(last=False)
                raise
            self._write(key, data)
        return data

    def _read(self, key: str) -> bytes | None:
        """The cached file, opened without following a symlink planted at its name (ELOOP: made anew)."""
        try:
            fd = os.open(self._dir / f"{key}.jpg", os.O_RDONLY | _NO_FOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_THUMBNAIL_BYTES:
                return None
            return os.read(fd, MAX_THUMBNAIL_BYTES)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _write(self, key: str, data: bytes) -> None:
        """Written to a new private file and renamed over the name: a symlink there is replaced, never
        written through. Best effort: a thumbnail that cannot be kept is made again next time."""
        try:
            self._dir.mkdir(mode=0o700, exist_ok=True)
            dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot keep thumbnails in %s (%s): each is made again", self._dir, exc.strerror)
            return
        temporary = f".{key}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o600, dir_fd=dir_fd)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            os.rename(temporary, f"{key}.jpg", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            self._written += 1
            if self._written % 100 == 0:
                _prune(dir_fd, MAX_KEPT)
        except OSError as exc:
            log.warning("cannot keep a thumbnail in %s (%s)", self._dir, exc.strerror)
            try:
                os.unlink(temporary, dir_fd=dir_fd)
            except OSError:
                pass
        finally:
            os.close(dir_fd)


def _prune(dir_fd: int, keep: int) -> None:
    """Remove the oldest thumbnails beyond `keep` (a changed file leaves its old one behind)."""
    try:
        names = [n for n in os.listdir(dir_fd) if n.endswith(".jpg")]
        if len(names) <= keep:
            return
        aged = sorted(names, key=lambda n: os.stat(n, dir_fd=dir_fd, follow_symlinks=False).st_mtime_ns)
        for name in aged[: len(names) - keep]:
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass  # another pass prunes them


def make_thumbnail(image_fd: int, shown: str) -> bytes:
    """A JPEG of at most THUMBNAIL_SIDE px a side from the image at `image_fd`; `NoThumbnail` when it
    holds more than MAX_PIXELS pixels (said in the log) or Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        size, head = os.fstat(image_fd).st_size, os.pread(image_fd, 30, 0)
    except OSError as exc:
        raise NoThumbnail(type(exc).__name__) from None
    if size > MAX_SOURCE_BYTES:
        say(
            log.warning,
            "%s: %d bytes, more than the %d the status page reads for a thumbnail; none is shown",
            shown,
            size,
            MAX_SOURCE_BYTES,
            file=shown,
        )
        raise NoThumbnail("too large a file")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        # Pillow makes a WebP's canvas as it opens it, before its size can be looked at.
        canvas = webp_canvas(head)
        if canvas is None:
            raise NoThumbnail("a WebP of no canvas size known here")
        _check_pixels(*canvas, shown)
    # Pillow's own guard refuses at open, without the size; ours below reads the header and says it.
    Image.MAX_IMAGE_PIXELS = None
    with os.fdopen(os.dup(image_fd), "rb") as f:
        f.seek(0)
        try:
            with Image.open(f, formats=FORMATS) as image:
                _check_pixels(*image.size, shown)  # from the header: nothing decoded yet
                image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # a JPEG decodes at a fraction
                image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                out = io.BytesIO()
                image.convert("RGB").save(out, "JPEG", quality=80)
                return out.getvalue()
        except NoThumbnail:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
            # What Pillow's decoders raise on broken data, at open or while reading the image.
            raise NoThumbnail(type(exc).__name__) from None


def _check_pixels(width: int, height: int, shown: str) -> None:
    if width * height > MAX_PIXELS:
        say(
            log.warning,
            "%s: %d x %d pixels, more than the %d the status page decodes for a thumbnail; none is shown",
            shown,
            width,
            height,
            MAX_PIXELS,
            file=shown,
        )
        raise NoThumbnail("too many pixels")


def webp_canvas(head: bytes) -> tuple[int, int] | None:
    """A WebP's canvas (width, height) from its first 30 bytes, read as Pillow reads it; None when its
    first chunk is none of VP8, VP8L, VP8X."""
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
