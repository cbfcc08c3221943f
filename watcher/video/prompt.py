"""PLACEHOLDER of engineer io's module, for this branch only: `is_end_frame` (VIDEO.md), which
`scan --dry-run` uses. At merge, take io's `watcher/video/prompt.py` whole."""

from __future__ import annotations

import os
import stat

from watcher.core.media import IMAGE_SUFFIXES
from watcher.core.video import END_FRAME_INFIX
from watcher.disk.files import lstat_beneath


def is_end_frame(root: str, image: str) -> bool:
    """`x.end.png` with an image `x.<ext>` beside it (a regular file, reached without a link)."""
    stem, ext = os.path.splitext(image)
    if ext.lower() not in IMAGE_SUFFIXES or not stem.endswith(END_FRAME_INFIX):
        return False
    base = stem[: -len(END_FRAME_INFIX)]
    for suffix in IMAGE_SUFFIXES:
        for candidate in (base + suffix, base + suffix.upper()):
            try:
                if stat.S_ISREG(lstat_beneath(root, candidate).st_mode):
                    return True
            except OSError:
                continue
    return False
