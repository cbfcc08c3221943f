"""Which files the page serves, opened as the agent opens them (`watcher.disk.files`: no symlink, one
component at a time below the watched folder): an image with a done sidecar of this agent's owner, and
an MP4 the videos' journal says is done. Anything else is `NotServed` (a 404)."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from urllib.parse import unquote_to_bytes

from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder
from watcher.core.media import SIDECAR_SUFFIX
from watcher.core.signature import signature_of
from watcher.disk.files import OutsideRootError, components_below, open_regular_file_and_stat
from watcher.disk.records import is_valid_sidecar, read_record, record_matches

MAX_QUERY = 8192
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class NotServed(Exception):
    """Why a file is not served (said in the log at debug level; the client gets a plain 404)."""


def parse_file_query(query: str, folders: int) -> tuple[int, str]:
    """`folder=N&file=REL` as (N, REL), N below `folders`; REL's percent-encoded bytes are a name's own."""
    if len(query) > MAX_QUERY:
        raise NotServed("query too long")
    fields: dict[str, bytes] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        fields[key] = unquote_to_bytes(value.replace("+", " "))
    where = fields.get("folder", b"").decode("latin-1")
    if not (where.isascii() and where.isdigit()) or int(where) >= folders:
        raise NotServed("no such folder")
    rel = os.fsdecode(fields.get("file", b""))
    if not rel or rel.startswith("/") or "\0" in rel:
        raise NotServed("not a path relative to the folder")
    # One spelling per file (no `.` or empty part): `./a//b.png` would be another thumbnail to make.
    # (`..` stays: a video may be in an output_dir beside the folder; each route checks where it leads.)
    parts = [part for part in rel.split("/") if part not in ("", ".")]
    if not parts:
        raise NotServed("not a path relative to the folder")
    return int(where), "/".join(parts)


def open_done_image(folder: Folder, rel: str, owner: ApiOwner) -> tuple[int, os.stat_result]:
    """The descriptor and stat of `rel` in `folder` when its sidecar says it is done for `owner`, for
    these very bytes (`record_matches`); the caller closes the descriptor."""
    path = _below(folder.path, rel)
    try:
        fd, st = open_regular_file_and_stat(path, folder.path)
    except OSError as exc:
        raise NotServed(f"cannot open it: {exc.strerror or type(exc).__name__}") from None
    try:
        sidecar = read_record(path + SIDECAR_SUFFIX, root=folder.path)
        if not is_valid_sidecar(sidecar) or sidecar is None:
            raise NotServed("no sidecar")
        if not owner.owns(sidecar):
            raise NotServed("its sidecar is another API user's")
        if not record_matches(sidecar, signature_of(st)):
            raise NotServed("its sidecar is for other bytes")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_done_video(
    where: int, folder: Folder, rel: str, done: Collection[tuple[int, str]]
) -> tuple[int, os.stat_result]:
    """The descriptor and stat of the MP4 `rel` (relative to `folder`, maybe in its output_dir outside
    it) when the journal lists it done (`done`: (folder index, rel) pairs)."""
    if (where, rel) not in done or not rel.endswith(".mp4"):
        raise NotServed("not a done video")
    path = os.path.normpath(os.path.join(folder.path, rel))
    roots = [folder.path] + ([folder.generate.output_dir] if folder.generate is not None else [])
    for root in roots:
        try:
            components_below(root, path)
        except OutsideRootError:
            continue
        try:
            return open_regular_file_and_stat(path, root)
        except OSError as exc:
            raise NotServed(f"cannot open it: {exc.strerror or type(exc).__name__}") from None
    raise NotServed("outside the folder and its output_dir")


def _below(root: str, rel: str) -> str:
    path = root.rstrip("/") + "/" + rel
    try:
        components_below(root, path)  # refuses `..` anywhere
    except OutsideRootError:
        raise NotServed("outside the folder") from None
    return path


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte asked for by a single `Range: bytes=` header, or None for the whole file
    (no header, or several ranges); ValueError when it cannot be satisfied (a 416)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges, or another unit: the whole file is an allowed answer
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        raise ValueError("empty range")
    if not first_text:  # the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise ValueError("empty range")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise ValueError("outside the file")
    return first, last
