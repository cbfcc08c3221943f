"""Whether a downloaded file is an MP4: an `ftyp` box first, then top-level boxes (one a `moov`) that add
up to the file's size exactly. Only box headers are read, never the video itself."""

from __future__ import annotations

import os

from watcher.core.media import MP4, SNIFF_BYTES, identify, mp4_boxes_fill

# A plain MP4 has a handful of top-level boxes, a fragmented one a `moof`/`mdat` pair per fragment;
# past this many, a hostile file costs no more reads.
MAX_BOXES = 4096


def looks_like_mp4(fd: int, size: int) -> bool:
    """Whether the `size` bytes of the open file `fd` are an MP4 by their box structure (pread only)."""

    def read_at(offset: int, length: int) -> bytes:
        return os.pread(fd, length, offset)

    try:
        # `identify`: a well-formed `ftyp` box first, of a video brand (not a HEIF still picture).
        return identify(read_at(0, SNIFF_BYTES)) is MP4 and mp4_boxes_fill(
            read_at, size, max_boxes=MAX_BOXES, to_end=True
        )
    except OSError:
        return False
