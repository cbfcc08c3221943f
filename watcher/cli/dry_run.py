"""`minimax-watcher scan --dry-run`: what a scan would upload now, and what it would refuse, read-only.

Nothing is uploaded, written, locked or removed, and no token is needed; files are judged as the agent
judges them (`watcher.scan.inventory`), and the first bytes of each pending file name its type.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from watcher.config.load import Config
from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder, is_inside
from watcher.core.media import MAX_UPLOAD_BYTES, SNIFF_BYTES, name_problem, refusal, sniff_content_type
from watcher.core.messages import FileState
from watcher.core.video import is_end_frame
from watcher.disk.files import open_regular_file
from watcher.scan.inventory import walk_candidates


@dataclass(frozen=True)
class PlannedUpload:
    path: str
    content_type: str | None  # None: it would not be uploaded (see `problem`)
    size: int
    account: str
    problem: str | None = None


def plan(config: Config, owner: ApiOwner | None = None) -> Iterator[PlannedUpload]:
    """`owner`: whose sidecars count as done (a sidecar of another API user or base URL does not)."""
    for folder in config.folders:
        walk = walk_candidates(
            folder.path, folder.recursive, folder.account, admits=folder.admits, owner=owner
        )
        for found in walk:
            if found.state is FileState.PENDING:
                yield _planned(folder, found.path, found.signature.size)


def _planned(folder: Folder, path: str, size: int) -> PlannedUpload:
    account = folder.account or "default"
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
    """One line per file (path, type, size, account), refusals after, then a total."""
    from watcher.cli.status import printable

    lines = []
    going = [p for p in planned if p.content_type is not None]
    for p in going:
        lines.append(f"{printable(p.path)}\t{p.content_type}\t{p.size}\t{p.account}")
    for p in planned:
        if p.content_type is None:
            lines.append(
                f"{printable(p.path)}\t-\t{p.size}\t{p.account}\tnot uploaded: {printable(p.problem or '')}"
            )
    total = sum(p.size for p in going)
    lines.append(
        f"{len(going)} files would be uploaded ({total / 1e6:.1f} MB), {len(planned) - len(going)} not"
    )
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
        account = folder.account or "default"
        line = (
            f"{len(images)} video{'' if len(images) == 1 else 's'} would be requested for {printable(folder.path)} "
            f"(account {account}, model {printable(video.model)})"
        )
        if len(images) > video.max_per_day:
            line += f"; at most {video.max_per_day} a day (max_per_day), the rest on the days after"
        lines.append(line)
    if not lines:
        return None
    lines.append("a dry run uploads nothing and asks for no video: no credits are spent")
    return "\n".join(lines)
