"""Sidecars (`<image>.json`) and error records (`<image>.error.json`): format, atomic writes, reads."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from watcher.core.api_owner import BASE_URL_KEY
from watcher.core.media import ERROR_RECORD_SUFFIX, SIDECAR_SUFFIX, error_record_path
from watcher.core.outcome import is_valid_file_id
from watcher.core.signature import FileSignature, RecordId, record_id_of
from watcher.disk.files import fsync_folder, open_beneath, parent_beneath

# A sidecar larger than this is not ours; never read a huge file into memory to find out.
MAX_RECORD_BYTES = 64 * 1024


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_sidecar(
    *,
    image_path: str,
    account: str,
    file_id: str,
    oss_path: str,
    signature: FileSignature,
    sha256: str,
    content_type: str,
    uploaded_at: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    sidecar = {
        "fileID": file_id,
        "ossPath": oss_path,
        "account": account,
        "file": os.path.basename(image_path),
        "size": signature.size,
        "mtime_ns": signature.mtime_ns,
        "ino": signature.ino,
        "ctime_ns": signature.ctime_ns,
        "sha256": sha256,
        "contentType": content_type,
        "uploadedAt": uploaded_at or utc_now_iso(),
    }
    if base_url is not None:
        sidecar[BASE_URL_KEY] = base_url  # whose fileID this is: `watcher.core.api_owner`
    return sidecar


def build_error_record(
    *, error: str, code: int | str, attempts: int, signature: FileSignature
) -> dict[str, Any]:
    return {
        "error": error,
        "code": code,
        "attempts": attempts,
        "failedAt": utc_now_iso(),
        "size": signature.size,
        "mtime_ns": signature.mtime_ns,
        "ino": signature.ino,
    }


NAME_MAX = 255  # bytes, on every Linux filesystem the agent is likely to meet


# Unpredictable 8-hex tokens for temporaries' names, drawn from the OS in batches: one getrandom call
# per file was one more system call (and thread switch) per sidecar in a burst. list.pop and
# list.extend are atomic, so threads share the pool without a lock.
_TOKENS_PER_DRAW = 256
_tokens: list[str] = []


def _random_token() -> str:
    try:
        return _tokens.pop()
    except IndexError:
        drawn = secrets.token_bytes(4 * _TOKENS_PER_DRAW)
        _tokens.extend(drawn[i : i + 4].hex() for i in range(0, len(drawn), 4))
        return _tokens.pop()


def temporary_name(name: str) -> str:
    """`.<name>.<8 hex>.tmp`, with `name` shortened when needed so the whole stays within NAME_MAX bytes.

    A sidecar name of up to 255 bytes must stay writable even though its temporary is longer.
    """
    suffix = f".{_random_token()}.tmp"
    room = NAME_MAX - 1 - len(suffix)
    encoded = os.fsencode(name)
    if len(encoded) > room:
        stem = os.fsencode(name.removesuffix(".json"))[: room - len(".json")]
        name = stem.decode(errors="ignore") + ".json"  # ignore: never cut a character in half
    return f".{name}{suffix}"


def write_json_atomically(
    path: str, data: dict[str, Any], root: str = "", *, sync_folder: Callable[[int], None] | None = None
) -> RecordId:
    """Write `data` so that a reader sees either the old file or the complete new one, never a part.

    The temporary is a dot-file in the same folder (the agent and other tools ignore dot-files), it is
    fsynced before the rename, and the rename replaces a symlink planted at `path` instead of writing
    through it. The folder is reached from `root` without following a symlink (see `watcher.disk.files`),
    and both names are used relative to it, so a folder swapped for a symlink midway is never written
    into. The folder is fsynced so the new name survives a power cut: here, or by `sync_folder` (given
    the folder's descriptor: `watcher.disk.folder_sync`). Returns the file's `RecordId`.
    """
    with parent_beneath(root, path) as (dir_fd, name):
        return write_json_in(dir_fd, name, data, sync_folder=sync_folder)


def write_json_in(
    dir_fd: int, name: str, data: dict[str, Any], *, sync_folder: Callable[[int], None] | None = None
) -> RecordId:
    """`write_json_atomically` into a folder already reached safely (`dir_fd`, maybe O_PATH)."""
    try:
        payload = (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode()
    except UnicodeEncodeError:
        # A file name that is not valid UTF-8 (surrogate-escaped by Python): \udcXX escapes keep the
        # JSON valid and give the same name back to a reader.
        payload = (json.dumps(data, ensure_ascii=True, indent=2) + "\n").encode()
    tmp = temporary_name(name)
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
    )
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            st = os.fstat(fd)  # after the rename, which sets the ctime a reader will see
        finally:
            os.close(fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    if sync_folder is not None:
        sync_folder(dir_fd)
    else:
        fsync_folder(".", dir_fd)
    return record_id_of(st)


def write_sidecar_atomically(
    image_path: str,
    sidecar: dict[str, Any],
    root: str = "",
    *,
    sync_folder: Callable[[int], None] | None = None,
) -> RecordId:
    """Write the image's sidecar (see `write_json_atomically`) and remove its error record, stale now;
    the sidecar's `RecordId`. The one writer of sidecars."""
    with parent_beneath(root, image_path) as (dir_fd, name):
        record_id = write_json_in(dir_fd, name + SIDECAR_SUFFIX, sidecar, sync_folder=sync_folder)
        remove_error_record_in(dir_fd, name)
    return record_id


def write_error_record(image_path: str, record: dict[str, Any], root: str = "") -> None:
    write_json_atomically(error_record_path(image_path), record, root)


def remove_error_record_in(dir_fd: int, image_name: str) -> None:
    """Remove the error record of the image `image_name` of the folder `dir_fd`, if there is one."""
    try:
        os.unlink(image_name + ERROR_RECORD_SUFFIX, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def read_record(
    path: str, max_bytes: int = MAX_RECORD_BYTES, root: str = "", dir_fd: int | None = None
) -> dict[str, Any] | None:
    """A sidecar or error record as a dict; None when absent, a symlink (or below one), unreadable or not ours.

    With `dir_fd` (a folder already reached safely, as a scan holds), `path`'s name is opened in it.
    """
    try:
        if dir_fd is not None:
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(os.path.basename(path), flags, dir_fd=dir_fd)
        else:
            fd = open_beneath(root, path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        raw = b""
        while len(raw) <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def record_matches(record: dict[str, Any] | None, signature: FileSignature, *, inode: bool = True) -> bool:
    """True when a sidecar or error record describes this exact version of the file: the same size and
    mtime_ns, and the same inode where the record names one.

    The inode catches new bytes renamed into place with the old size and mtime (`cp -p`, `rsync -a`,
    archives with normalised timestamps). Records written before inodes were recorded match on size
    and mtime_ns alone, so an upgrade uploads nothing again. `inode=False` asks the weaker question.
    """
    if record is None:
        return False
    if record.get("size") != signature.size or record.get("mtime_ns") != signature.mtime_ns:
        return False
    recorded = record.get("ino")
    return not inode or not isinstance(recorded, int) or not signature.ino or recorded == signature.ino


def same_change_time(record: dict[str, Any], signature: FileSignature) -> bool:
    """Whether the sidecar's `ctime_ns` is the file's: new bytes written into the same inode with the
    size and mtime put back (`cp -p`) moved it. A sidecar without one (written before it was recorded)
    is not asked: an upgrade uploads nothing again."""
    recorded = record.get("ctime_ns")
    return (
        not isinstance(recorded, int)
        or not recorded
        or not signature.ctime_ns
        or recorded == signature.ctime_ns
    )


def is_valid_sidecar(record: dict[str, Any] | None) -> bool:
    """A sidecar whose fileID has the documented shape (a malformed one is useless to videos/create)."""
    return (
        record is not None
        and is_valid_file_id(record.get("fileID"))
        and isinstance(record.get("sha256"), str)
    )
