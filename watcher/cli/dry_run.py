"""`minimax-watcher scan --dry-run`: what a scan would upload now, and what it would refuse, read-only.

Nothing is uploaded, written, locked or removed, and no token is needed; files are judged as the agent
judges them (`watcher.scan.inventory`), and the first bytes of each pending file name its type.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from watcher.config.load import Config
from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder, is_inside
from watcher.core.globs import glob_matches
from watcher.core.media import (
    MAX_UPLOAD_BYTES,
    SIDECAR_SUFFIX,
    SNIFF_BYTES,
    SUFFIXES_BY_KIND,
    TEMPORARY_SUFFIXES,
    kind_of_name,
    name_problem,
    refusal,
    sniff_content_type,
)
from watcher.core.messages import FileState
from watcher.core.video import PROMPT_SUFFIX, is_end_frame
from watcher.core.wording import count, size
from watcher.disk.files import open_directory, open_regular_file
from watcher.disk.walk import walk
from watcher.log_fields import account_shown
from watcher.scan.inventory import walk_candidates

# Folders below a drop folder this listing looks into: deeper is a dropper's maze (one descriptor a level).
MAX_DEPTH = 256
MAX_LISTED = 20  # lines per reason a file is not uploaded; the rest are counted

# Why a file is not uploaded, in the order the listing gives them, and how the counts name them.
REASONS = {
    "refused": "refused",
    "failed": "failed before",
    "done": "already uploaded",
    "filtered": "left out by include/exclude",
    "kind": "not of the folder's media",
    "name": "temporary or dot-named",
    "record": "written by the agent (records)",
    "not_file": "not regular (symlinks, FIFOs)",
    "folder": "not looked into",
}


@dataclass(frozen=True)
class PlannedUpload:
    path: str
    content_type: str | None  # None: it would not be uploaded (see `problem`)
    size: int
    account: str  # "-": none configured, the token's only account
    problem: str | None = None
    reason: str = "refused"  # with `problem`: its key in REASONS


def plan(
    config: Config, owner: ApiOwner | None = None, *, everything: bool = False
) -> Iterator[PlannedUpload]:
    """The pending files, each with its type or why it would be refused. `everything`: also every other
    file and folder below each folder, with why it is not uploaded. `owner`: whose sidecars count as
    done (a sidecar of another API user or base URL does not)."""
    for folder in config.folders:
        walk = walk_candidates(
            folder.path, folder.recursive, folder.account, admits=folder.admits, owner=owner
        )
        account = folder.account or "-"
        for found in walk:
            size = found.signature.size
            if found.state is FileState.PENDING:
                yield _planned(folder, found.path, size)
            elif everything and found.state is FileState.DONE:
                yield PlannedUpload(
                    found.path, None, size, account, "already uploaded (its sidecar matches)", "done"
                )
            elif everything:
                error = str((found.record or {}).get("error", ""))
                why = f"failed before: {error}; tried again when the file changes, or by `minimax-watcher retry`"
                yield PlannedUpload(found.path, None, size, account, why, "failed")
        if everything:
            yield from _not_candidates(folder)


def _not_candidates(folder: Folder) -> Iterator[PlannedUpload]:
    """Every entry below `folder` that is not even a candidate, with why; never through a symlink."""
    account = folder.account or "-"
    try:
        top = open_directory(folder.path, folder.path)
    except OSError:
        return  # said by the walk above
    try:
        yield from _left_out_below(folder, account, top)
    finally:
        os.close(top)


def _left_out_below(folder: Folder, account: str, top: int) -> Iterator[PlannedUpload]:
    for level in walk(folder.path, top, MAX_DEPTH):
        directory, dir_fd = level.path, level.fd
        kept = []
        for name in sorted(level.dirs):
            path = os.path.join(directory, name)
            why = _folder_left_out(folder, path, name, dir_fd)
            if why is None and level.deepest:
                why = f"more than {MAX_DEPTH} folders deep: not looked into by this listing"
            if why is None:
                kept.append(name)
            else:
                yield PlannedUpload(path + "/", None, 0, account, why, "folder")
        level.dirs[:] = kept
        for name in sorted(level.files):
            path = os.path.join(directory, name)
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            left_out = _file_left_out(folder, path, name, st)
            if left_out is not None:
                n_bytes = st.st_size if stat.S_ISREG(st.st_mode) else 0
                yield PlannedUpload(path, None, n_bytes, account, *left_out)


def _folder_left_out(folder: Folder, path: str, name: str, dir_fd: int) -> str | None:
    try:
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            return "a symlink to a folder: never followed"
    except OSError:
        return "cannot be read"
    if name.startswith("."):
        return "a dot-folder: never looked into"
    settings = {folder.done_dir: "done_dir", folder.failed_dir: "failed_dir"}
    if folder.generate is not None:
        settings[folder.generate.output_dir] = "generate.output_dir"
    if path in settings:
        return f"the folder's {settings[path]}: never uploaded from"
    if not folder.recursive:
        return "a subfolder: not looked into (the folder has recursive: false)"
    return None


def _file_left_out(folder: Folder, path: str, name: str, st: os.stat_result) -> tuple[str, str] | None:
    """Why the file at `path` is not a candidate, and its key in REASONS; None when it is one."""
    if stat.S_ISLNK(st.st_mode):
        return "a symlink: never followed", "not_file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a FIFO, socket or device)", "not_file"
    if folder.admits(path):
        return None  # a candidate: the walk above judged it
    lower = name.lower()
    if name.startswith("."):
        return "a dot-file: never uploaded", "name"
    if lower.endswith(TEMPORARY_SUFFIXES):
        return "a writer's temporary name (~, .tmp, .part...): uploaded once renamed", "name"
    recorded = name[: -len(SIDECAR_SUFFIX)].removesuffix(".error").removesuffix(".video")
    if lower.endswith(SIDECAR_SUFFIX) and kind_of_name(recorded) is not None:
        return "a record the agent writes (sidecar, error record or video record)", "record"
    if folder.generate is not None and lower.endswith(PROMPT_SUFFIX):
        return "a prompt file for the videos", "record"
    if kind_of_name(name) not in folder.media:
        taken = " ".join(s for kind in sorted(folder.media) for s in SUFFIXES_BY_KIND[kind])
        return f"not of the folder's media ({', '.join(sorted(folder.media))}: {taken})", "kind"
    return _filtered(folder, path), "filtered"


def _filtered(folder: Folder, path: str) -> str:
    relative = path[len(folder.path.rstrip("/")) + 1 :]
    for pattern in folder.exclude:
        if glob_matches(pattern, relative):
            return f"excluded by exclude {pattern!r}"
    said = f"matched by no include glob ({', '.join(repr(g) for g in folder.include)})"
    # The habit rclone and gitignore users bring: a glob without "/" matching the name at any depth.
    near = [g for g in folder.include if "/" not in g and glob_matches(g, relative.rpartition("/")[2])]
    if "/" in relative and near:
        said += f": {near[0]!r} matches at the top only; {'**/' + near[0]!r} matches at any depth"
    return said


def _planned(folder: Folder, path: str, size: int) -> PlannedUpload:
    account = folder.account or "-"
    problem = name_problem(os.path.basename(path))
    if problem is None and size == 0:
        problem = "empty: waits for its first write"
    if problem is None and size > MAX_UPLOAD_BYTES:
        problem = "over 5 GB: the API refuses it"
    if problem is not None:
        return PlannedUpload(path, None, size, account, problem)
    try:
        fd = open_regular_file(path, folder.path)
        try:
            head = os.pread(fd, SNIFF_BYTES, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        return PlannedUpload(path, None, size, account, f"cannot be read: {exc.strerror or exc}")
    content_type = sniff_content_type(head, folder.media)
    if content_type is None:
        return PlannedUpload(
            path, None, size, account, refusal(head, folder.media, os.path.basename(path)).error
        )
    return PlannedUpload(path, content_type, size, account)


def render(planned: list[PlannedUpload]) -> str:
    """One line per file (path, type, size in bytes, account or "-"), then those not uploaded with why (at
    most MAX_LISTED a reason, the rest counted), then a total."""
    from watcher.cli.status import printable

    lines = []
    going = [p for p in planned if p.content_type is not None]
    for p in going:
        lines.append(f"{printable(p.path)}\t{p.content_type}\t{p.size}\t{p.account}")
    counts = []
    for reason, label in REASONS.items():
        left = [p for p in planned if p.content_type is None and p.reason == reason]
        for p in left[:MAX_LISTED]:
            why = printable(p.problem or "")
            lines.append(f"{printable(p.path)}\t-\t{p.size}\t{p.account}\tnot uploaded: {why}")
        if len(left) > MAX_LISTED:
            more = left[MAX_LISTED:]
            lines.append(f"... and {len(more)} more {label} ({size(sum(p.size for p in more))})")
        if left and reason != "folder":
            counts.append(f"{len(left)} {label}")
    total = sum(p.size for p in going)
    files = [p for p in planned if p.reason != "folder"]
    line = f"{count(len(going), 'file')} would be uploaded ({size(total)}), {len(files) - len(going)} not"
    line += f": {', '.join(counts)}" if counts else ""
    if folders := len(planned) - len(files):
        line += f"; {count(folders, 'folder')} not looked into"
    lines.append(line)
    return "\n".join(lines)


def render_videos(config: Config, planned: list[PlannedUpload]) -> str | None:
    """For each folder with `generate`: how many videos its uploads would ask for (images, not end
    frames), and that a dry run spends nothing. None when no folder makes videos."""
    from watcher.cli.status import printable

    lines = []
    for folder in config.folders:
        video = folder.generate
        if video is None:
            continue
        images = [
            p
            for p in planned
            if p.content_type is not None
            and p.content_type.startswith("image/")
            and is_inside(p.path, folder.path)
            and not is_end_frame(os.path.basename(p.path))
        ]
        line = (
            f"{count(len(images), 'video')} would be requested for {printable(folder.path)} "
            f"({account_shown(folder.account)}, model {printable(video.model)})"
        )
        if len(images) > video.max_per_day:
            line += f"; at most {video.max_per_day} a day (max_per_day), the rest on the days after"
        lines.append(line)
    if not lines:
        return None
    lines.append("a dry run uploads nothing and asks for no video: no credits are spent")
    return "\n".join(lines)
