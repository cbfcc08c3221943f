"""`minimax-watcher retry` as the agent carries it out: a failed or unknown video queued again (its key
unspent), a done image with no video offered from its sidecar. Requests come only from the state folder
(`watcher.state.retry_requests`), never from a record in a drop folder."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from watcher.core.folders import Folder, is_inside
from watcher.core.generation import Entry, Planner
from watcher.core.ports import VideoOffer
from watcher.state.journal import Journal
from watcher.state.videos import Kept, video_key
from watcher.video.beside import done_image


def retry_videos(
    planner: Planner,
    journal: Journal[Kept],
    folders: Iterable[Folder],
    offer: Callable[[VideoOffer], None],
    paths: Sequence[str],
    failed: bool,
    folder: str | None,
) -> list[str]:
    """What `retry` asked for, done; one line each for the log."""
    said: list[str] = []
    entries = list(planner.entries.values())
    if failed:
        for entry in entries:
            if folder is None or entry.folder == folder.rstrip("/") or is_inside(entry.image, folder):
                _retry_entry(planner, journal, entry, said)
    for path in paths:
        mine = [e for e in entries if e.image == path]
        if not mine:
            found = done_image(folders, path)
            if isinstance(found, str):
                said.append(found)
            else:
                offer(VideoOffer(*found))
                said.append(f"{path}: a video is asked for")
        elif not any([_retry_entry(planner, journal, entry, said) for entry in mine]):
            states = ", ".join(sorted({e.state.value for e in mine}))
            said.append(f"{path}: its video is {states}; nothing to do")
    return said


def _retry_entry(planner: Planner, journal: Journal[Kept], entry: Entry, said: list[str]) -> bool:
    was = entry.state.value
    if not planner.retry(entry):
        return False
    journal.add(video_key(entry.id), entry)
    said.append(f"{entry.image}: its {was} video is asked for again")
    return True
