"""Which sidecars the agent wrote itself: an HMAC seal, keyed by a secret in the state folder.

Only a sealed sidecar lends its fileID to another file: anyone who can write to a folder could otherwise
plant one claiming a victim image's sha256. The seal covers what dedupe trusts (fileID, ossPath, account,
size, sha256, base URL); an unsealed sidecar still marks its own file done.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from watcher.disk.files import write_all

log = logging.getLogger(__name__)

SEAL_KEY = "seal"
SEALED_FIELDS = ("fileID", "ossPath", "account", "size", "sha256")
# Sealed only when present, so that sidecars sealed before it existed still verify; removing it from
# a sidecar that had it breaks the seal all the same.
SEALED_IF_PRESENT = ("baseUrl",)
SEAL_KEY_FILE = "sidecar-seal.key"
KEY_BYTES = 32
MAX_KEY_BYTES = 64


class SidecarSeal:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a seal key needs at least 16 bytes")
        self._key = key

    def _mac(self, sidecar: dict[str, Any]) -> str:
        fields = [sidecar.get(name) for name in SEALED_FIELDS]
        fields += [sidecar[name] for name in SEALED_IF_PRESENT if name in sidecar]
        message = json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def seal(self, sidecar: dict[str, Any]) -> dict[str, Any]:
        """`sidecar` with its seal added."""
        return {**sidecar, SEAL_KEY: self._mac(sidecar)}

    def verifies(self, sidecar: dict[str, Any] | None) -> bool:
        if sidecar is None:
            return False
        seal = sidecar.get(SEAL_KEY)
        return isinstance(seal, str) and hmac.compare_digest(seal, self._mac(sidecar))


class _Unreadable(Exception):
    """The key file is there but this process may not read it (another user's): never replaced."""


def load_seal_key(state_dir: Path | None) -> bytes:
    """The secret that seals the sidecars this agent writes, made on first use in the state folder.

    A key file that cannot be a key (too short, a directory, a FIFO, a socket, a symlink) is replaced
    by a new key with one warning: the sidecars sealed with the old one keep marking their own files
    done, but lend their fileIDs to no other file (at worst an upload is repeated once). A key this
    process may not read, or a state folder it cannot write, gives a key for this process alone.
    """
    if state_dir is None:
        return secrets.token_bytes(KEY_BYTES)
    path = state_dir / SEAL_KEY_FILE
    try:
        key, problem = _read_key(path)
    except _Unreadable as exc:
        log.warning(
            "cannot read the seal key %s (%s): sidecars written now lend their fileIDs to this run only; "
            "make it readable by the agent's user",
            path,
            exc,
        )
        return secrets.token_bytes(KEY_BYTES)
    if key is not None:
        return key
    key = secrets.token_bytes(KEY_BYTES)
    try:
        _install_key(path, key, replace=problem is not None)
    except FileExistsError:
        # Another process made the key meanwhile: use that one (read once more, never in a loop).
        try:
            theirs, _ = _read_key(path)
        except _Unreadable:
            theirs = None
        return theirs if theirs is not None else key
    except OSError as exc:
        log.warning(
            "cannot save a seal key at %s (%s): sidecars written now lend their fileIDs to this run only; "
            "remove what is in its way or let the agent write there",
            path,
            exc.strerror or exc,
        )
        return key
    if problem is not None:
        log.warning(
            "the seal key %s %s: replaced it with a new key; sidecars sealed with the old one still mark "
            "their own files done but no longer lend their fileID to other files",
            path,
            problem,
        )
    return key


def _read_key(path: Path) -> tuple[bytes | None, str | None]:
    """(the key, None), (None, None) when there is none, or (None, what is wrong with the file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO never blocks
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise _Unreadable(exc.strerror) from None
        if exc.errno == errno.ELOOP:
            return None, "is a symlink"
        return None, f"cannot be opened ({exc.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file"
        key = os.read(fd, MAX_KEY_BYTES)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    if len(key) < KEY_BYTES:
        return None, f"is too short ({len(key)} bytes, {KEY_BYTES} needed)"
    return key, None


def _install_key(path: Path, key: bytes, *, replace: bool) -> None:
    """Write `key` at `path` (private, durable); raises FileExistsError when `replace` is False and a
    key appeared meanwhile (another process's: never overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SEAL_KEY_FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            write_all(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)  # a directory in the way fails here (EISDIR): a key for this run
        else:
            os.link(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
