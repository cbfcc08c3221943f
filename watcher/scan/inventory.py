"""A folder's inventory: which candidates it holds, and what state each one is in.

Shared by the agent's scans and `minimax-watcher status`, so both judge a file by one rule: done when its
sidecar matches its size and mtime_ns, failed when its error record does, pending otherwise.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from watcher.core.api_owner import ApiOwner
from watcher.core.folders import Folder
from watcher.core.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX, is_candidate_name
from watcher.core.messages import FileState, FoundFile
from watcher.core.ports import Observed
from watcher.core.signature import (
    NO_RECORD_ID,
    RACY_NS,
    FileSignature,
    RecordId,
    is_regular_file_mode,
    record_id_of,
    signature_of,
)
from watcher.disk.files import looks_complete_on_disk, lstat_beneath, open_directory, parent_beneath
from watcher.disk.records import is_valid_sidecar, read_record, record_matches, same_change_time
from watcher.scan.helper import IN_FLIGHT as HELPER_IN_FLIGHT
from watcher.scan.helper import Checked, SharedHelper
from watcher.scan.vouching import check_directory

if TYPE_CHECKING:
    from watcher.state.index import DoneRow

log = logging.getLogger(__name__)

# A start-up helper pays for its own start (about 0.1 s of the other core) past a few thousand files,
# and only helps where there are directories to share.
HELPER_AFTER_ENTRIES = 2000
HELPER_AFTER_DIRECTORIES = 4

# Temporaries left by `write_json_atomically` when the process died between create and rename.
STALE_TEMPORARY = re.compile(r"^\..+\.json\.[0-9a-f]{8}\.tmp$")


def classify(
    path: str,
    signature: FileSignature,
    account: str | None,
    names: Collection[str] | None = None,
    root: str = "",
    dir_fd: int | None = None,
    owner: ApiOwner | None = None,
) -> FoundFile:
    """The state of one candidate, from its sidecar and error record (read only when they exist).

    A sidecar counts only for the folder's account and for the API user and base URL (`owner`) it was
    made for: an image moved with its sidecar (mv, rsync -a) from another account's folder keeps its
    mtime, and a fileID of the emulator or of another token's user is useless here; such a file is
    pending, and its new upload replaces the sidecar. The records are read from below `root` without
    following a symlink (see `watcher.disk.files`).
    """
    name = os.path.basename(path)
    in_doubt: dict[str, Any] | None = None
    if names is None or name + SIDECAR_SUFFIX in names:
        sidecar = read_record(path + SIDECAR_SUFFIX, root=root, dir_fd=dir_fd)
        if (
            sidecar is not None
            and is_valid_sidecar(sidecar)
            and (account is None or sidecar.get("account") == account)
            and (owner is None or owner.owns(sidecar))
        ):
            if record_matches(sidecar, signature) and same_change_time(sidecar, signature):
                return FoundFile(path, signature, FileState.DONE, sidecar)
            if record_matches(sidecar, signature, inode=False):
                # Same size and mtime, another inode or change time: maybe new bytes put in place
                # (`cp -p`), maybe the same bytes after a chmod, a link or a copy. Pending, with the
                # sidecar offered to dedupe (when sealed), so the upload re-hashes the file and reuses
                # the fileID, paying nothing, only if the bytes are the same.
                in_doubt = sidecar
    if names is None or name + ERROR_RECORD_SUFFIX in names:
        error = read_record(path + ERROR_RECORD_SUFFIX, root=root, dir_fd=dir_fd)
        if record_matches(error, signature) and failure_still_holds(
            path, error.get("code") if error else None, root
        ):
            return FoundFile(path, signature, FileState.FAILED, error)
    return FoundFile(path, signature, FileState.PENDING, in_doubt)


def failure_still_holds(path: str, code: object, root: str = "") -> bool:
    """A permanent failure holds until the file changes; an unreadable file's, until it becomes readable."""
    return not (code == "unreadable" and _readable(path, root))


def _readable(path: str, root: str) -> bool:
    try:
        with parent_beneath(root, path) as (dir_fd, name):
            return os.access(name, os.R_OK, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False


def walk_candidates(
    root: str,
    recursive: bool,
    account: str | None,
    *,
    start: str | None = None,
    admits: Callable[[str], bool] | None = None,
    known_in: Callable[[str], Mapping[str, DoneRow]] | None = None,
    remove_temporaries_before: float | None = None,
    on_listing: Callable[[str, Collection[str]], object] | None = None,
    on_vanished: Callable[[str, list[str]], object] | None = None,
    memo: DirectoryMemo | None = None,
    turn: int | None = None,
    on_unchanged: Callable[[str], object] | None = None,
    helper: SharedHelper | None = None,
    on_vouched: Callable[[str, int], object] | None = None,
    before_listing: Callable[[str], object] | None = None,
    owner: ApiOwner | None = None,
) -> Iterator[FoundFile]:
    """Every candidate under the watched folder `root` (or its subfolder `start`) with its state.

    With a `memo`, each directory listed is remembered; with a `turn` as well (a periodic rescan), a
    directory the memo finds unchanged is not listed again (`on_unchanged` is told of it) unless it is
    its turn to be (`DirectoryMemo`).

    Each directory is listed through a descriptor reached from `root` without following a symlink, so a
    subfolder swapped for a link mid-walk lists nothing outside the folder. `known_in` gives, for a
    directory, the files the index knows to be done (`watcher.state.index`); a file the index vouches for
    (`watcher.scan.vouching`: the signature and account its row recorded, beside the very sidecar the row
    was made from) is not reported at all, and its sidecar is not read: starts and rescans cost a
    listing and two stats per done file. `on_vanished(directory, names)` is told of the known files
    that are no longer listed, and `on_vouched(directory, count)` of how many the index vouched for.
    `owner`: the API user and base URL a sidecar must belong to (`classify`; None: any).
    `on_listing` receives each directory with the names it holds, as it is listed; `before_listing`
    is called before each directory is listed (the start-up scan watches subfolders that way).
    Unreadable subfolders are logged and skipped; the rest of the walk goes on. `admits` says whether
    a path is a candidate of the folder (its media kinds, include and exclude: `Folder.admits`); by
    default, an image name.

    With a `helper` (a start-up scan), once the walk has seen enough to be worth it, a helper process
    checks every other directory against the index on the second core (`watcher.scan.helper`). When
    the scanner has already sent it `start`, the walk takes its answer and lists `start` from there.
    """
    start = start or root
    stack: list[str] = []
    listed = 0

    def listing(directory: str, names: Collection[str]) -> None:
        nonlocal listed
        listed += len(names)
        if on_listing is not None:
            on_listing(directory, names)

    def visit(folder: str, checked: Checked | None) -> Iterator[FoundFile]:
        if before_listing is not None:
            before_listing(folder)
        try:
            dir_fd = open_directory(root, folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link or a file: not ours
                log.error(
                    "cannot list %s: %s; its files are skipped until it can be read", folder, exc.strerror
                )
            return
        try:
            stamp = _stamp(os.fstat(dir_fd)) if memo is not None else None
            if stamp is not None and turn is not None and memo is not None:
                subfolders = memo.unchanged(folder, stamp, turn)
                if subfolders is not None:
                    if recursive:
                        stack.extend(subfolders)
                    if on_unchanged is not None:
                        on_unchanged(folder)
                    return
            pushed = len(stack)
            yield from _walk_directory(
                root,
                folder,
                dir_fd,
                recursive,
                account,
                stack,
                known_in=known_in,
                remove_temporaries_before=remove_temporaries_before,
                on_listing=listing,
                admits=admits,
                on_vanished=on_vanished,
                checked=checked,
                on_vouched=on_vouched,
                owner=owner,
            )
            if stamp is not None and memo is not None:
                memo.remember(folder, stamp, stack[pushed:])
        finally:
            os.close(dir_fd)

    running = helper.running if helper is not None else None
    may_start_helper = helper is not None and running is None and known_in is not None and turn is None
    try:
        if running is None or not running.holds(root, start):
            yield from visit(start, None)
        while stack or (running is not None and running.outstanding(root)):
            if may_start_helper and listed >= HELPER_AFTER_ENTRIES and len(stack) >= HELPER_AFTER_DIRECTORIES:
                may_start_helper = False
                assert helper is not None
                running = helper.start()
            if running is not None:
                while running.alive and stack and running.in_flight < HELPER_IN_FLIGHT:
                    folder = stack.pop()
                    if before_listing is not None:
                        before_listing(folder)  # before the helper lists it
                    running.send(root, account or "", folder)
                for folder, checked in running.answers(root, wait=not stack):
                    yield from visit(folder, checked)
                if not stack:
                    continue
            yield from visit(stack.pop(), None)
    finally:
        if running is not None:
            running.drop(root)


Stamp = tuple[int, int, int]  # a directory's (inode, mtime_ns, ctime_ns)


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


class DirectoryMemo:
    """What each directory looked like when it was last listed, so that a periodic rescan can pass over
    the directories nothing was added to, removed from or renamed in since (their mtime and ctime
    would have moved), and descend into the subfolders it remembers.

    A directory's own stamp does not move when a file in it is rewritten in place: inotify reports
    that, and every `ROTATION`th rescan lists a directory again whatever its stamp (each directory on
    its own turn, so a rescan re-checks a share of the files, not all of them at once). A stamp less
    than `RACY_NS` old when it was taken is not trusted: a change in the same timestamp tick would not
    move it. Forgotten (`clear`) when events may have been lost.
    """

    ROTATION = 48  # a full look at every file every 4 hours at the default rescan_seconds of 300

    def __init__(self, racy_ns: int = RACY_NS) -> None:
        self._dirs: dict[str, tuple[Stamp, tuple[str, ...]]] = {}
        self._racy_ns = racy_ns

    def unchanged(self, directory: str, stamp: Stamp, turn: int) -> tuple[str, ...] | None:
        """Its subfolders as remembered, when it need not be listed again; else None."""
        known = self._dirs.get(directory)
        if known is None or known[0] != stamp or self.turn_of(directory) == turn % self.ROTATION:
            return None
        return known[1]

    @classmethod
    def turn_of(cls, directory: str) -> int:
        """The rescans (modulo ROTATION) that list `directory` whatever its stamp."""
        return zlib.crc32(os.fsencode(directory)) % cls.ROTATION

    def remember(self, directory: str, stamp: Stamp, subfolders: list[str]) -> None:
        if time.time_ns() - max(stamp[1], stamp[2]) < self._racy_ns:
            self._dirs.pop(directory, None)
        else:
            self._dirs[directory] = (stamp, tuple(subfolders))

    def clear(self) -> None:
        self._dirs.clear()

    def keep_only(self, root: str, reached: Collection[str]) -> None:
        """A whole walk of `root` reached only these directories: forget those below it that went."""
        prefix = root.rstrip("/") + "/"
        for gone in [d for d in self._dirs if (d == root or d.startswith(prefix)) and d not in reached]:
            del self._dirs[gone]


def _walk_directory(
    root: str,
    folder: str,
    dir_fd: int,
    recursive: bool,
    account: str | None,
    stack: list[str],
    known_in: Callable[[str], Mapping[str, DoneRow]] | None,
    remove_temporaries_before: float | None,
    on_listing: Callable[[str, Collection[str]], object] | None,
    admits: Callable[[str], bool] | None,
    on_vanished: Callable[[str, list[str]], object] | None = None,
    checked: Checked | None = None,
    on_vouched: Callable[[str, int], object] | None = None,
    owner: ApiOwner | None = None,
) -> Iterator[FoundFile]:
    """One directory's candidates; `checked`: what the index vouches for in it, when the start-up
    helper has already looked (`watcher.scan.helper`)."""
    try:
        with os.scandir(dir_fd) as it:
            entries = list(it)
    except OSError as exc:
        log.error("cannot list %s: %s; its files are skipped until it can be read", folder, exc.strerror)
        return
    names = {e.name for e in entries}
    if on_listing is not None:
        on_listing(folder, names)
    if checked is None:
        known: Mapping[str, DoneRow] = known_in(folder.rstrip("/") or "/") if known_in is not None else {}
        checked = check_directory(dir_fd, names, known, account or "") if known else (set(), [])
    vouched, vanished = checked
    if vouched and on_vouched is not None:
        on_vouched(folder, len(vouched & names))
    if vanished and on_vanished is not None:
        on_vanished(folder.rstrip("/") or "/", vanished)
    # This loop runs once per file of every folder at each start and rescan: it stays lean.
    prefix = f"{folder.rstrip('/')}/"
    for entry in entries:
        name = entry.name
        if name in vouched:
            continue  # done, and vouched for by the index: not reported, its sidecar not read
        try:
            if entry.is_dir(follow_symlinks=False):
                if recursive and not name.startswith("."):
                    stack.append(prefix + name)
                continue
            if name.endswith(SIDECAR_SUFFIX):
                continue  # a sidecar or an error record (`.error.json`): never a candidate
            if name.startswith("."):
                # Never a candidate; maybe a crash's leftover temporary: one this process is writing
                # right now is newer than the process.
                if (
                    remove_temporaries_before is not None
                    and STALE_TEMPORARY.match(name)
                    and entry.stat(follow_symlinks=False).st_mtime < remove_temporaries_before
                ):
                    _remove_quietly(name, dir_fd)
                continue
            path = prefix + name
            candidate = admits(path) if admits is not None else is_candidate_name(name)
            if not candidate or not entry.is_file(follow_symlinks=False):
                continue
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue  # vanished while we looked: its delete event or the next scan handles it
        signature = signature_of(st)
        found = classify(path, signature, account, names, root, dir_fd, owner)
        if found.state is FileState.DONE:
            found = replace(found, record_id=_record_id(dir_fd, name + SIDECAR_SUFFIX))
        yield found


def _record_id(dir_fd: int, name: str) -> RecordId:
    try:
        return record_id_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except OSError:
        return NO_RECORD_ID


def _remove_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


class DiskProbe:
    """The scheduler's `FileProbe` on the real filesystem.

    `folder_for` names the watched folder a path lies in: every look goes through it without following
    a symlink below it, and a path in no folder is not looked at. Without it, paths are trusted as given.
    """

    def __init__(
        self,
        folder_for: Callable[[str], Folder | None] | None = None,
        owner: Callable[[], ApiOwner | None] = lambda: None,
    ) -> None:
        self._folder_for = folder_for
        self._owner = owner  # the API user and base URL in force now (a reload may change them)

    def _root(self, path: str) -> str | None:
        if self._folder_for is None:
            return ""
        folder = self._folder_for(path)
        return folder.path if folder is not None else None

    def observe(self, path: str) -> Observed | None:
        root = self._root(path)
        if root is None:
            return None
        try:
            st = lstat_beneath(root, path)
        except OSError:
            return None
        if not is_regular_file_mode(st.st_mode):
            return None
        return Observed(signature_of(st), time.time())

    def looks_complete(self, path: str, size: int) -> bool:
        root = self._root(path)
        if root is None:
            return False
        try:
            return looks_complete_on_disk(path, size, root)
        except OSError:
            return False

    def classify(self, path: str, signature: FileSignature, account: str | None) -> FoundFile:
        root = self._root(path)
        if root is None:
            return FoundFile(path, signature, FileState.PENDING)
        return classify(path, signature, account, root=root, owner=self._owner())

    def failure_still_holds(self, path: str, code: object) -> bool:
        root = self._root(path)
        return root is None or failure_still_holds(path, code, root)
