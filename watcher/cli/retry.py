"""`minimax-watcher retry PATH… | --failed [--folder PATH]`: say what each file would be given again,
then ask the agent for it (`watcher.state.retry_requests`).

The command only reads the folders (never through a symlink), and only the records beside the files:
they are for people, and the agent, which keeps the truth in its journal, decides what it does.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.cli.status import MAX_SHOWN, printable
from watcher.core.folders import Folder, folder_containing, is_inside
from watcher.core.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX, is_candidate_name
from watcher.core.messages import FileState
from watcher.core.video import VIDEO_RECORD_SUFFIX
from watcher.disk.files import lstat_beneath, parent_beneath
from watcher.disk.records import is_valid_sidecar, read_record, remove_error_record_in
from watcher.report.status_report import choose_state_dir
from watcher.scan.inventory import walk_candidates
from watcher.state.retry_requests import RETRY_DIR, RetryRequest, ask

log = logging.getLogger("watcher")
RETRIED_VIDEO = ("failed", "moderated", "unknown")  # a video record's statuses that retry asks for again


class RetryUsageError(Exception):
    """A path or folder the config does not know: nothing is asked (exit 2)."""


@dataclass(frozen=True)
class Verdict:
    path: str  # the image (absolute)
    says: str  # what the record beside it suggests will happen
    asks: bool  # whether it goes into the request
    clears_in: str | None = None  # an error record to remove (from this root): the upload is taken again


@dataclass(frozen=True)
class Place:
    folder: Folder
    root: str  # where the no-follow walk to the file starts
    image: str
    note: str | None = None  # why nothing can be retried there (failed_dir, output_dir)


def locate(path: str, folders: Sequence[Folder]) -> Place | None:
    """The folder `path` belongs to (the folder itself, its done_dir, failed_dir or output_dir), with a
    record's name (`x.png.error.json`) taken as its image's; None when it is in none of them."""
    given = os.path.normpath(os.path.abspath(path))
    # /srv/drop may be a link to where the config's resolved folder lies: the folder it names counts.
    real = os.path.join(os.path.realpath(os.path.dirname(given)), os.path.basename(given))
    for candidate in dict.fromkeys((given, real)):
        image = _image_of(candidate)
        place = _place_of(image, folders)
        if place is not None:
            return place
    return None


def _image_of(path: str) -> str:
    for suffix in (VIDEO_RECORD_SUFFIX, ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX):
        stem = path.removesuffix(suffix)
        if stem != path and is_candidate_name(os.path.basename(stem)):
            return stem
    return path


def _place_of(image: str, folders: Sequence[Folder]) -> Place | None:
    for folder in folders:
        output = folder.generate.output_dir if folder.generate is not None else None
        if output is not None and is_inside(image, output):
            return Place(
                folder, folder.path, image, "a video the agent made; retry takes the image it came from"
            )
        if folder.failed_dir is not None and is_inside(image, folder.failed_dir):
            return Place(
                folder, folder.path, image, "in failed_dir: move it back into the folder to upload it again"
            )
        if folder.done_dir is not None and is_inside(image, folder.done_dir):
            inside = is_inside(folder.done_dir, folder.path)
            return Place(folder, folder.path if inside else folder.done_dir, image)
    owner = folder_containing(image, folders)
    return Place(owner, owner.path, image) if owner is not None else None


def judge(place: Place) -> Verdict:
    """What retrying `place.image` would do, as its records tell; reads only, never follows a link."""
    image, root, folder = place.image, place.root, place.folder
    if place.note is not None:
        return Verdict(image, f"{place.note}: nothing to retry", False)
    try:
        st = lstat_beneath(root, image)
    except FileNotFoundError:
        return Verdict(image, "no such file: nothing to retry", False)
    except OSError as exc:
        why = "a symlink on the way" if exc.errno == errno.ELOOP else exc.strerror or type(exc).__name__
        return Verdict(image, f"cannot be reached ({why}): nothing to retry", False)
    if not stat.S_ISREG(st.st_mode):
        return Verdict(image, "not a regular file: nothing to retry", False)
    if not is_candidate_name(os.path.basename(image), folder.media):
        return Verdict(image, "not a file this folder uploads: nothing to retry", False)
    error = read_record(image + ERROR_RECORD_SUFFIX, root=root)
    if error is not None:
        says = f"error record ({_short(error.get('error'))}) cleared: the agent uploads it again"
        return Verdict(image, says, False, clears_in=root)
    sidecar = read_record(image + SIDECAR_SUFFIX, root=root)
    if not is_valid_sidecar(sidecar):
        return Verdict(image, "not uploaded yet (the agent uploads it): nothing to retry", False)
    if folder.generate is None:
        return Verdict(
            image, "uploaded; its folder makes no videos (no generate block): nothing to retry", False
        )
    return _judge_video(image, read_record(image + VIDEO_RECORD_SUFFIX, root=root))


def _judge_video(image: str, video: dict[str, Any] | None) -> Verdict:
    status = video.get("status") if video is not None else None
    if video is None or not isinstance(status, str):
        return Verdict(image, "done, no video: a video will be requested", True)
    if status == "unknown":
        return Verdict(
            image, f"video unknown ({_short(video.get('error'))}): a new video will be requested", True
        )
    if status in RETRIED_VIDEO:
        return Verdict(
            image, f"video {status} ({_short(video.get('error'))}): a new video will be requested", True
        )
    if status == "done":
        return Verdict(image, f"video done ({_short(video.get('video'))}): nothing to retry", False)
    return Verdict(image, f"video {_short(status)}: nothing to retry", False)


def _short(value: object) -> str:
    return printable(str(value), MAX_SHOWN) if value not in (None, "") else "no reason given"


def failed_verdicts(folders: Sequence[Folder]) -> Iterator[Verdict]:
    """Every error record and every failed or unknown video of `folders` (their done_dirs too, where
    an image waits with its video record), as `judge` tells them."""
    for folder in folders:
        for found in walk_candidates(folder.path, folder.recursive, folder.account, admits=folder.admits):
            if found.state is FileState.FAILED:
                yield judge(Place(folder, folder.path, found.path))
            elif found.state is FileState.DONE and folder.generate is not None:
                yield from _failed_video(found.path, folder.path)
        done = folder.done_dir
        if folder.generate is not None and done is not None:
            inside = is_inside(done, folder.path)
            root = folder.path if inside else done
            for found in walk_candidates(root, True, folder.account, start=done if inside else None):
                if found.state is FileState.DONE:
                    yield from _failed_video(found.path, root)


def _failed_video(image: str, root: str) -> Iterator[Verdict]:
    video = read_record(image + VIDEO_RECORD_SUFFIX, root=root)
    if video is not None and video.get("status") in RETRIED_VIDEO:
        yield _judge_video(image, video)


def run(
    paths: Sequence[str],
    *,
    failed: bool,
    folder: str | None,
    folders: Sequence[Folder],
    state_dirs: Sequence[Path],
    out: Callable[[str], None],
) -> int:
    """The command: 0 when asked (or nothing to ask), 1 when the request cannot be written."""
    if failed:
        chosen = _chosen_folders(folder, folders)
        verdicts = list(failed_verdicts(chosen))
        request = RetryRequest((), True, chosen[0].path if folder is not None else None)
    else:
        places = [(path, locate(path, folders)) for path in paths]
        outside = [path for path, place in places if place is None]
        if outside:
            paths_of = {f.path for f in folders}
            raise RetryUsageError(
                "; ".join(
                    f"{printable(p, MAX_SHOWN)}: "
                    + (
                        "a configured folder: name its files, or use --failed --folder"
                        if os.path.realpath(p) in paths_of
                        else "not inside a configured folder"
                    )
                    for p in outside
                )
                + "; nothing asked"
            )
        verdicts = [judge(place) for _, place in places if place is not None]
        request = RetryRequest(tuple(dict.fromkeys(v.path for v in verdicts if v.asks)), False, None)
    for verdict in verdicts:
        if verdict.clears_in is not None and not _cleared(verdict.clears_in, verdict.path, out):
            continue
        out(f"{printable(verdict.path)}: {verdict.says}")
    if failed and not verdicts:
        out("no error records and no failed or unknown videos on disk")
    if not failed and not request.paths:
        if not any(v.clears_in is not None for v in verdicts):
            out("nothing to ask the agent for")
        return 0
    state_dir, agent = choose_state_dir(state_dirs)
    try:
        ask(state_dir, request)
    except OSError as exc:
        log.error(
            "cannot write the request into %s: %s (run it as root, or as the agent's user); nothing asked",
            printable(str(state_dir / RETRY_DIR)),
            exc.strerror or type(exc).__name__,
        )
        return 1
    what = "asked the agent to retry the failed and unknown ones it knows of" if failed else "asked the agent"
    if agent is not None:
        out(f"{what}: the running agent (pid {agent.get('pid')}) takes it within seconds")
    else:
        out(f"{what}: no agent runs on {printable(str(state_dir))} now; the agent takes it at its next start")
    return 0


def _cleared(root: str, image: str, out: Callable[[str], None]) -> bool:
    """Remove `image`'s error record (reached without following a link): the agent sees it go (or its
    next start finds the file without one) and uploads the file again. An upload spends no video
    credits and the file is the operator's to retry, so no request to the agent is needed."""
    try:
        with parent_beneath(root, image) as (dir_fd, name):
            remove_error_record_in(dir_fd, name)
    except OSError as exc:
        out(f"{printable(image)}: its error record cannot be removed ({exc.strerror or exc}); nothing done")
        return False
    return True


def print_line(line: str) -> None:
    # Bytes, not text: stdout's own encoding (ASCII under LANG=C) must not decide whether it works.
    sys.stdout.buffer.write((line + "\n").encode("utf-8", "surrogateescape"))
    sys.stdout.buffer.flush()


def _chosen_folders(folder: str | None, folders: Sequence[Folder]) -> list[Folder]:
    if folder is None:
        return list(folders)
    given = os.path.normpath(os.path.abspath(folder))
    for candidate in (given, os.path.realpath(given)):
        match = [f for f in folders if f.path == candidate]
        if match:
            return match
    raise RetryUsageError(f"--folder {printable(folder, MAX_SHOWN)}: not a configured folder; nothing asked")
