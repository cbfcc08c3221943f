"""Walking a drop folder: which candidates it holds and what state each one is in.

Shared by the agent's startup and periodic scans and by `minimax-watcher status`, so both judge a file
by the same rule: done when its sidecar matches its size and mtime_ns, failed when its error record
does, pending otherwise.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from watcher.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX, is_candidate_name
from watcher.settle import FileSignature
from watcher.sidecar import is_valid_sidecar, read_record, record_matches

log = logging.getLogger(__name__)

# Temporaries left by `write_json_atomically` when the process died between create and rename.
STALE_TEMPORARY = re.compile(r"^\..+\.json\.[0-9a-f]{8}\.tmp$")


class FileState(StrEnum):
    DONE = "done"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True)
class FoundFile:
    path: str
    signature: FileSignature
    state: FileState
    # The sidecar (DONE) or error record (FAILED) that decided the state.
    record: dict[str, Any] | None = None


def signature_of(st: os.stat_result) -> FileSignature:
    return FileSignature(st.st_size, st.st_mtime_ns, st.st_ino)


def classify(
    path: str, signature: FileSignature, account: str | None, names: set[str] | None = None
) -> FoundFile:
    """The state of one candidate, from its sidecar and error record (read only when they exist).

    A sidecar counts only for the folder's account: an image moved with its sidecar (mv, rsync -a) from
    another account's folder keeps its mtime, but that fileID is useless here.
    """
    name = os.path.basename(path)
    if names is None or name + SIDECAR_SUFFIX in names:
        sidecar = read_record(path + SIDECAR_SUFFIX)
        if (
            is_valid_sidecar(sidecar)
            and record_matches(sidecar, signature)
            and (account is None or sidecar is None or sidecar.get("account") == account)
        ):
            return FoundFile(path, signature, FileState.DONE, sidecar)
    if names is None or name + ERROR_RECORD_SUFFIX in names:
        error = read_record(path + ERROR_RECORD_SUFFIX)
        if record_matches(error, signature) and failure_still_holds(
            path, error.get("code") if error else None
        ):
            return FoundFile(path, signature, FileState.FAILED, error)
    return FoundFile(path, signature, FileState.PENDING)


def failure_still_holds(path: str, code: object) -> bool:
    """A permanent failure holds until the file changes; an unreadable file's, until it becomes readable."""
    return not (code == "unreadable" and os.access(path, os.R_OK))


def walk_candidates(
    root: str,
    recursive: bool,
    account: str | None,
    *,
    known: Callable[[str], FileSignature | None] | None = None,
    remove_stale_temporaries: bool = False,
    on_listing: Callable[[str, set[str]], None] | None = None,
) -> Iterator[FoundFile]:
    """Every candidate under `root` with its state.

    `known` gives the signature the caller already knows to be done for a path; a file that still has
    it is reported DONE without reading its sidecar again (and with no record), which keeps periodic
    rescans cheap. `on_listing` receives each directory with the names it holds, as it is listed.
    Unreadable subfolders are logged and skipped; the rest of the walk goes on.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("cannot list %s: %s; its files are skipped until it can be read", folder, exc.strerror)
            continue
        names = {e.name for e in entries}
        if on_listing is not None:
            on_listing(folder, names)
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not name.startswith("."):
                        stack.append(entry.path)
                    continue
                if remove_stale_temporaries and STALE_TEMPORARY.match(name):
                    _remove_quietly(entry.path)
                    continue
                if not is_candidate_name(name) or not entry.is_file(follow_symlinks=False):
                    continue
                signature = signature_of(entry.stat(follow_symlinks=False))
            except OSError:
                continue  # vanished while we looked: its delete event or the next scan handles it
            if known is not None and known(entry.path) == signature:
                yield FoundFile(entry.path, signature, FileState.DONE)
                continue
            yield classify(entry.path, signature, account, names)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
