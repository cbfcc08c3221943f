"""`done_dir` and `failed_dir`: moving a file and its record out of the drop folder, crash-safe.

The intent is journalled, the new name claimed by a link, the record written there, the old names
unlinked, the intent marked done; a record found in a folder never moves or writes anything, whatever it
says. See docs/architecture.md, 'Recording and moving'.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from watcher.core.folders import is_inside
from watcher.core.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX
from watcher.core.signature import signature_of
from watcher.disk.files import components_below, fsync_folder, made_folder, parent_beneath
from watcher.disk.records import record_matches, write_json_in
from watcher.log_fields import say

log = logging.getLogger("watcher")

MOVING_KEY = "movingTo"  # what versions before the journal wrote into a record; never acted on
MAX_CLASHES = 10_000
FOLDER_MODE = 0o775


class MoveJournal(Protocol):
    """Where a move's intent is journalled (`watcher.state.moves`): added, fsynced, before its file is
    linked to a new name; ended, without an fsync (finishing a move twice changes nothing), once done."""

    def add(self, key: str, entry: dict[str, Any], *, sync: bool = True) -> None: ...

    def remove(self, key: str, *, sync: bool = True) -> dict[str, Any] | None: ...

    def read(self) -> dict[str, dict[str, Any]]: ...

    def compact(self) -> None: ...


class _Unjournalled:
    """Moves without a journal (no state folder): a stop in the middle of one may leave a stray link."""

    def add(self, key: str, entry: dict[str, Any], *, sync: bool = True) -> None:
        pass

    def remove(self, key: str, *, sync: bool = True) -> dict[str, Any] | None:
        return None

    def read(self) -> dict[str, dict[str, Any]]:
        return {}

    def compact(self) -> None:
        pass


class Mover:
    """Moves files with their records into done_dir / failed_dir; one per agent, shared by its threads."""

    def __init__(self, journal: MoveJournal | None, roots: Callable[[], Iterable[str]] = tuple) -> None:
        self._journal = journal if journal is not None else _Unjournalled()
        self._roots = roots  # the watched folders now: a done_dir below one is that folder's droppers
        self._lock = threading.Lock()
        self._moving: set[str] = set()  # files a thread is moving now (a worker, or the start-up scan)

    def move(self, image: str, suffix: str, root: str, dest_dir: str, record: dict[str, Any]) -> str | None:
        """Move `image` (below the watched folder `root`) and its record (`image + suffix`, holding
        `record`) into `dest_dir`, keeping the path below `root`; the file's new path, or None when
        another thread is moving it already. Raises OSError when it cannot: the file stays beside its
        record (`why_not_moved` says why)."""
        with self._lock:
            if image in self._moving:
                return None
            self._moving.add(image)
        try:
            return self._move(image, suffix, root, dest_dir, record)
        finally:
            with self._lock:
                self._moving.discard(image)

    def move_with_record(
        self, image: str, root: str, dest_dir: str, record: dict[str, Any], *, done: bool
    ) -> str | bool:
        """`move` for a file whose record (its sidecar when `done`, else its error record) is durable:
        the file's new path; True when another thread is moving it; False when it cannot move (said in
        the log: the file stays beside its record)."""
        try:
            moved = self.move(image, record_suffix(done), root, dest_dir, record)
        except OSError as exc:
            say(
                log.error,
                "%s: cannot move it to %s: %s; it stays beside its %s",
                image,
                dest_dir,
                why_not_moved(exc),
                "sidecar" if done else "error record",
                file=image,
                folder=root,
                event="attention",
            )
            return False
        return True if moved is None else moved

    def move_along(self, root: str, image: str, moved_to: str, dest_dir: str, names: Iterable[str]) -> None:
        """Move files that belong to `image` (named in its folder: its video record, prompt file, end
        frame) beside it at `moved_to`, under the names its move gave it. Regular files only, reached
        without following a link, never over an existing name; one left behind is said, not fatal."""
        old, new = os.path.basename(image), os.path.basename(moved_to)
        old_stem, new_stem = os.path.splitext(old)[0], os.path.splitext(new)[0]
        base = _dest_base(dest_dir, (root, *self._roots()))
        try:
            with parent_beneath(root, image) as (src_fd, _), parent_beneath(base, moved_to) as (dest_fd, _):
                for name in names:
                    prefix = old if name.startswith(old) else old_stem
                    target = (new if prefix == old else new_stem) + name[len(prefix) :]
                    _move_one(src_fd, name, dest_fd, target, image)
                fsync_folder(".", dest_fd)
                fsync_folder(".", src_fd)
        except OSError as exc:
            say(
                log.warning,
                "%s: its companions stay where they are: %s",
                image,
                why_not_moved(exc),
                file=image,
            )

    def _move(self, image: str, suffix: str, root: str, dest_dir: str, record: dict[str, Any]) -> str:
        below = components_below(root, image)
        folder = "/".join([dest_dir.rstrip("/"), *below[:-1]])
        base = _dest_base(dest_dir, (root, *self._roots()))
        with parent_beneath(root, image) as (src_fd, src_name), _made_dest(base, root, folder) as dest_fd:
            st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or not record_matches(record, signature_of(st)):
                raise OSError(errno.ESTALE, "it changed since its record was written")
            move_id = secrets.token_hex(8)
            intent = _intent(root, image, suffix, dest_dir, folder, st.st_ino)
            name, final = self._claim(move_id, src_fd, src_name, dest_fd, suffix, record, intent)
            if not _is_inode(dest_fd, name, st.st_ino):  # the file was swapped before the link
                _unlink(dest_fd, name)
                self._journal.remove(move_id, sync=False)
                raise OSError(errno.ESTALE, "it was replaced while it was being moved")
            _write_record(dest_fd, name + suffix, final)
            _leave(src_fd, src_name, suffix, st.st_ino)
        self._journal.remove(move_id, sync=False)
        return f"{folder}/{name}"

    def _claim(
        self,
        move_id: str,
        src_fd: int,
        src_name: str,
        dest_fd: int,
        suffix: str,
        record: dict[str, Any],
        intent: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        """Link the file to the first free name (file and record both free): the name, and the record
        to write beside it. Each name tried is journalled first, so a crash leaves no unknown link."""
        for candidate in candidate_names(src_name):
            if _exists(dest_fd, candidate) or _exists(dest_fd, candidate + suffix):
                continue
            final = {key: value for key, value in record.items() if key != MOVING_KEY}
            final["file"] = candidate
            folder = intent["folder"]
            self._journal.add(move_id, {**intent, "target": f"{folder}/{candidate}", "record": final})
            try:
                os.link(src_name, candidate, src_dir_fd=src_fd, dst_dir_fd=dest_fd, follow_symlinks=False)
            except FileExistsError:
                continue  # taken since it was looked at: the next one
            except OSError:
                self._journal.remove(move_id, sync=False)  # nothing linked: nothing to finish
                raise
            return candidate, final
        self._journal.remove(move_id, sync=False)
        raise FileExistsError(errno.EEXIST, f"{MAX_CLASHES} names taken", src_name)

    def recover(self) -> None:
        """At start, before any scan: finish each journalled move whose file reached its new name."""
        for intent in self._journal.read().values():
            try:
                _finish(intent, self._roots())
            except OSError as exc:
                image, target = intent.get("image"), intent.get("target")
                log.error(
                    "%s: cannot finish moving it to %s: %s; it stays there", image, target, why_not_moved(exc)
                )
            except (KeyError, TypeError, ValueError):
                log.warning("a move journalled in the state folder cannot be read; it is skipped")
        self._journal.compact()


def _intent(root: str, image: str, suffix: str, dest_dir: str, folder: str, ino: int) -> dict[str, Any]:
    return {"root": root, "image": image, "suffix": suffix, "dest": dest_dir, "folder": folder, "ino": ino}


def _finish(intent: dict[str, Any], roots: Iterable[str]) -> None:
    root, image, suffix, dest_dir, target = (
        str(intent[key]) for key in ("root", "image", "suffix", "dest", "target")
    )
    ino, record = int(intent["ino"]), dict(intent["record"])
    if suffix not in (SIDECAR_SUFFIX, ERROR_RECORD_SUFFIX):
        raise ValueError(suffix)
    with parent_beneath(_dest_base(dest_dir, (root, *roots)), target) as (dest_fd, name):
        # The very file (an inode number alone may have been reused since the stop): else it never got
        # there, it is beside its record in the drop folder, and the start-up scan moves it.
        if not (_is_inode(dest_fd, name, ino) and _describes(record, dest_fd, name)):
            return
        _write_record(dest_fd, name + suffix, record)
    try:
        with parent_beneath(root, image) as (src_fd, src_name):
            _leave(src_fd, src_name, suffix, ino)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            raise
    log.info("%s: finished moving it to %s (a stop had cut the move short)", image, target)


def _move_one(src_fd: int, name: str, dest_fd: int, target: str, image: str) -> None:
    try:
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        return  # a dropper's link or FIFO under a companion's name: not the agent's to move
    try:
        os.link(name, target, src_dir_fd=src_fd, dst_dir_fd=dest_fd, follow_symlinks=False)
    except FileExistsError:
        say(log.warning, "%s: %s stays: its name is taken where the file moved", image, name, file=image)
        return
    _unlink(src_fd, name)


def _dest_base(dest_dir: str, roots: Iterable[str]) -> str:
    """Where the walk to the destination starts, trusted as named: the deepest watched folder dest_dir
    lies in (its droppers' names from there on), else dest_dir's parent (the operator's path)."""
    holding = [root for root in roots if is_inside(dest_dir, root)]
    return max(holding, key=len) if holding else os.path.dirname(dest_dir.rstrip("/")) or "/"


@contextmanager
def _made_dest(base: str, root: str, folder: str) -> Iterator[int]:
    if base != root:
        os.makedirs(base, exist_ok=True)  # the operator's path (another watched folder exists already)
    with made_folder(base, folder, FOLDER_MODE) as fd:
        yield fd


def _write_record(dest_fd: int, name: str, record: dict[str, Any]) -> None:
    """The record beside the file's new name, fsynced with the folder (the link too, so: durable)."""
    write_json_in(dest_fd, name, record)


def _leave(src_fd: int, src_name: str, suffix: str, ino: int) -> None:
    """Unlink the file from the drop folder (if that name is still this file), then its record (if no
    other file took the name since: a new file's record is its own)."""
    if _is_inode(src_fd, src_name, ino):
        _unlink(src_fd, src_name)
    if not _exists(src_fd, src_name):
        _unlink(src_fd, src_name + suffix)
    fsync_folder(".", src_fd)


def _unlink(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _is_inode(dir_fd: int, name: str, ino: int) -> bool:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino == ino
    except OSError:
        return False


def _describes(record: dict[str, Any], dir_fd: int, name: str) -> bool:
    try:
        return record_matches(record, signature_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)))
    except OSError:
        return False


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def candidate_names(name: str) -> Iterator[str]:
    """`name`, then `name-1.ext`, `name-2.ext`..., up to MAX_CLASHES of them."""
    for n in range(MAX_CLASHES):
        yield clash_name(name, n)


def why_not_moved(exc: OSError) -> str:
    """A failed move's reason, said for the operator."""
    if exc.errno == errno.ELOOP:
        return (
            f"{exc.filename} is a symlink or lies below one, which is never followed (make it a plain folder)"
        )
    return f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc.strerror or exc)


def clash_name(name: str, n: int) -> str:
    """The `n`th name tried for `name` in a destination: `name`, then `name-1.ext`, `name-2.ext`..."""
    if n == 0:
        return name
    stem, ext = os.path.splitext(name)
    return f"{stem}-{n}{ext}"


def record_suffix(done: bool) -> str:
    return SIDECAR_SUFFIX if done else ERROR_RECORD_SUFFIX
