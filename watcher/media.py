"""Which files are candidates, what their first bytes say they are, and whether they look complete.

Everything here is decided from names and bytes, never from events, so it can be tested without a
filesystem and shared by the agent, the scanner and the status view.
"""

from __future__ import annotations

import os
import stat

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Names that downloaders, editors and sync tools use while a file is still being written.
TEMPORARY_SUFFIXES = ("~", ".tmp", ".part", ".partial", ".crdownload", ".download", ".swp")

SIDECAR_SUFFIX = ".json"
ERROR_RECORD_SUFFIX = ".error.json"

MAX_UPLOAD_BYTES = 5 * 1000**3  # the API's documented limit, 5 GB
NOT_AN_IMAGE = "not a PNG, JPEG or WebP image"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"

SNIFF_BYTES = 12


def is_candidate_name(name: str) -> bool:
    """True when a file name (no directory part) is one the agent should upload, judged by name alone."""
    if not name or name.startswith("."):
        return False
    lowered = name.lower()
    if lowered.endswith(TEMPORARY_SUFFIXES):
        return False
    return lowered.endswith(IMAGE_SUFFIXES)


def is_regular_file_mode(mode: int) -> bool:
    """Regular files only: symlinks, directories, FIFOs, sockets and devices are never candidates."""
    return stat.S_ISREG(mode)


def sidecar_path(image_path: str) -> str:
    return image_path + SIDECAR_SUFFIX


def error_record_path(image_path: str) -> str:
    return image_path + ERROR_RECORD_SUFFIX


def sniff_content_type(head: bytes) -> str | None:
    """The Content-Type to send for a file starting with `head`, or None when it is no supported image.

    WebP goes as image/jpeg: useapi.net documents that for its files endpoint.
    """
    if head.startswith(PNG_SIGNATURE):
        return "image/png"
    if head.startswith(JPEG_SOI):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/jpeg"
    return None


def looks_complete(head: bytes, tail: bytes, size: int) -> bool:
    """Whether an image's own structure says its writer has finished it.

    Used only to shorten the settle wait after a close-after-write event: a PNG ends with its IEND chunk,
    a JPEG with its EOI marker, a WebP's RIFF header states the file's length. A file that fails this
    check is not rejected; it simply waits the full settle time.
    """
    if head.startswith(PNG_SIGNATURE):
        return tail.endswith(PNG_IEND_CHUNK)
    if head.startswith(JPEG_SOI):
        return tail.endswith(JPEG_EOI)
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 == size
    return False


TAIL_BYTES = len(PNG_IEND_CHUNK)


def open_regular_file(path: str) -> int:
    """Open `path` for reading without following a symlink and without blocking on a FIFO.

    Returns the descriptor; raises IsADirectoryError-like OSError subclasses, or `NotRegularFileError`
    when the name now points at something other than a regular file (it may have been swapped since
    the last stat).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path)
        # Back to blocking reads for a regular file: O_NONBLOCK only mattered for the open itself.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class NotRegularFileError(OSError):
    """The path names a FIFO, socket, device or directory, not a regular file."""


def read_head_and_tail(path: str) -> tuple[bytes, bytes, os.stat_result]:
    """First bytes, last bytes and the stat of the open file, in one open."""
    fd = open_regular_file(path)
    try:
        st = os.fstat(fd)
        head = os.pread(fd, SNIFF_BYTES, 0)
        tail = os.pread(fd, TAIL_BYTES, max(0, st.st_size - TAIL_BYTES)) if st.st_size else b""
        return head, tail, st
    finally:
        os.close(fd)
