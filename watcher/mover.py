"""`done_dir` and `failed_dir`: moving a file and its record out of the drop folder, crash-safe.

The record (sidecar or error record) is durable before anything moves. Then, in this order:

0. the record is rewritten in place naming where the pair goes (`movingTo`, and `file` updated);
1. the file is linked to its new name, then unlinked from the old one (a link never overwrites: a name
   taken meanwhile fails the link instead of destroying someone's file);
2. the record is written at the destination (without `movingTo`), then removed from the old place.

A kill -9 at any point leaves the file beside a record that describes it: in the drop folder (before 1),
or in the new place with the old record still naming it (after 1). The scanner finishes such a move when
it meets a record carrying `movingTo` (`resume_move`), without uploading anything again. Both folders are
on one filesystem (the config refuses anything else), so every step is a rename-class operation.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from typing import Any

from watcher.files import folder_of, fsync_folder, lstat_beneath, signature_of
from watcher.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX
from watcher.sidecar import read_record, record_matches, write_json_atomically

log = logging.getLogger("watcher")

MOVING_KEY = "movingTo"
MAX_CLASHES = 10_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def move_with_record(image: str, suffix: str, root: str, dest_dir: str) -> str:
    """Move `image` (below the watched folder `root`) and its record (`image + suffix`) into `dest_dir`,
    keeping the path below `root`; the file's new path. Raises OSError when it cannot.

    Below `dest_dir` no symlink is followed either (a done folder inside the drop folder is writable
    by those who drop files): missing folders are made one at a time, each opened without following.
    """
    record = read_record(image + suffix, root=root)
    if record is None:
        raise FileNotFoundError(errno.ENOENT, "its record is gone", image + suffix)
    relative = os.path.relpath(image, root)
    with _dest_folder(dest_dir, os.path.dirname(relative)) as dest_fd:
        name = free_name(dest_fd, os.path.basename(relative), suffix)
    target = os.path.join(dest_dir, os.path.dirname(relative), name)
    record = {**record, "file": name, MOVING_KEY: target}
    write_json_atomically(image + suffix, record, root)
    return _finish(image, suffix, root, record, dest_dir)


def resume_move(image: str, suffix: str, root: str, dest_dirs: tuple[str, ...]) -> str | None:
    """Finish a move that a crash interrupted, from the record left at `image + suffix`; the file's new
    path, or None when the record names no move (or one that cannot be finished: logged).

    Only a move into one of the folder's own `dest_dirs` is finished: anyone who can write to the drop
    folder can write a record, and a planted `movingTo` must not send a file anywhere else.
    """
    record = read_record(image + suffix, root=root)
    target = record.get(MOVING_KEY) if record is not None else None
    if record is None or not isinstance(target, str):
        return None
    dest_dir = next((d for d in dest_dirs if components_ok(d, target)), None)
    if dest_dir is None:
        log.error("%s: its record asks for a move to %s, outside its done_dir and failed_dir; ignored",
                  image, target)  # fmt: skip
        return None
    if not _describes_the_file(record, image, root, target, dest_dir):
        log.error("%s: its record names a move to %s but does not describe the file there; ignored",
                  image, target)  # fmt: skip
        return None
    try:
        return _finish(image, suffix, root, record, dest_dir)
    except OSError as exc:
        log.error("%s: cannot finish moving it to %s: %s; it stays where it is", image, target,
                  exc.strerror or exc)  # fmt: skip
        return None


def _describes_the_file(record: dict[str, Any], image: str, root: str, target: str, dest_dir: str) -> bool:
    """Whether `record` names exactly the file being moved (size, mtime and inode: a move keeps all
    three), wherever the crash left it: a record someone else wrote cannot place itself beside another
    file of the done folder."""
    for base, path in ((root, image), (dest_dir, target)):
        try:
            return record_matches(record, signature_of(lstat_beneath(base, path)))
        except OSError:
            continue
    return False


def components_ok(dest_dir: str, target: str) -> bool:
    """`target` lies below `dest_dir`, with no `..` or empty component on the way."""
    prefix = dest_dir.rstrip("/") + "/"
    if not target.startswith(prefix):
        return False
    parts = target[len(prefix) :].split("/")
    return all(part not in ("", ".", "..") for part in parts)


def _finish(image: str, suffix: str, root: str, record: dict[str, Any], dest_dir: str) -> str:
    target = str(record[MOVING_KEY])
    relative_dir = os.path.dirname(target[len(dest_dir.rstrip("/")) + 1 :])
    name = os.path.basename(target)
    with folder_of(root, image) as (src_fd, src_name), _dest_folder(dest_dir, relative_dir) as dest_fd:
        _link_then_unlink(src_fd, src_name, dest_fd, name)
        final = {key: value for key, value in record.items() if key != MOVING_KEY}
        write_json_atomically(target + suffix, final, dest_dir)
        try:
            os.unlink(src_name + suffix, dir_fd=src_fd)
        except FileNotFoundError:
            pass
        fsync_folder(".", src_fd)
    return target


def _link_then_unlink(src_fd: int, src_name: str, dest_fd: int, name: str) -> None:
    try:
        os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=dest_fd, follow_symlinks=False)
    except FileExistsError:
        if not _same_file(src_fd, src_name, dest_fd, name):
            raise
    except FileNotFoundError:
        if _exists(dest_fd, name):
            return  # moved already: the crash came after the unlink
        raise
    try:
        os.unlink(src_name, dir_fd=src_fd)
    except FileNotFoundError:
        pass
    fsync_folder(".", dest_fd)


@contextlib.contextmanager
def _dest_folder(dest_dir: str, relative_dir: str) -> Iterator[int]:
    """A descriptor of `dest_dir/relative_dir`, made where missing, no symlink followed below dest_dir."""
    os.makedirs(dest_dir, exist_ok=True)
    fd = os.open(dest_dir, _DIR_FLAGS)
    try:
        for part in filter(None, relative_dir.split("/")):
            if part in (".", ".."):
                raise OSError(errno.EINVAL, "not a plain folder name", part)
            try:
                os.mkdir(part, 0o775, dir_fd=fd)
            except FileExistsError:
                pass
            child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _same_file(a_fd: int, a: str, b_fd: int, b: str) -> bool:
    try:
        sa = os.stat(a, dir_fd=a_fd, follow_symlinks=False)
        sb = os.stat(b, dir_fd=b_fd, follow_symlinks=False)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def free_name(dir_fd: int, name: str, suffix: str) -> str:
    """`name`, or `name-1.ext`, `name-2.ext`...: the first whose file and record are both free there."""
    for n in range(MAX_CLASHES):
        candidate = clash_name(name, n)
        if not _exists(dir_fd, candidate) and not _exists(dir_fd, candidate + suffix):
            return candidate
    raise FileExistsError(errno.EEXIST, f"{MAX_CLASHES} names taken", name)


def clash_name(name: str, n: int) -> str:
    """The `n`th name tried for `name` in a destination: `name`, then `name-1.ext`, `name-2.ext`..."""
    if n == 0:
        return name
    stem, ext = os.path.splitext(name)
    return f"{stem}-{n}{ext}"


def record_suffix(done: bool) -> str:
    return SIDECAR_SUFFIX if done else ERROR_RECORD_SUFFIX
