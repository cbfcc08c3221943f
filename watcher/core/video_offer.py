"""The hand-over from an upload to the generator: an image whose sidecar was just written."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.core.folders import Folder


@dataclass(frozen=True)
class VideoOffer:
    """An image whose sidecar was just written in a folder with `generate`: the pipeline hands it to
    the generator (`watcher.video.generator`), which decides whether and when it becomes a video."""

    folder: Folder
    image: str  # absolute
    file_id: str
    account: str
    sha256: str
