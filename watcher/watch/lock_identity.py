"""What an agent writes in the lock files it makes, and how another agent tells them from planted files.

A lock file is trusted only when its owner is a user an agent runs as (root, this agent's user, or
whoever NFS maps its files to) and it holds an agent's identity (host, pid, uid, start time, a nonce).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

MAX_LOCK_BYTES = 4096
_KIND = "minimax-watcher lock"
# An agent before identities made its lock file empty: held and trusted, it is such an agent's.
EARLIER_AGENT = "an agent of an earlier version (its lock file is empty)"


@dataclass(frozen=True)
class Identity:
    host: str
    pid: int
    uid: int
    started: str
    nonce: str

    def encode(self) -> bytes:
        return (json.dumps({"kind": _KIND, **asdict(self)}, sort_keys=True) + "\n").encode()

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, uid {self.uid}, since {self.started}"


def _make() -> Identity:
    started = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Identity(socket.gethostname()[:255], os.getpid(), os.geteuid(), started, secrets.token_hex(16))


_mine: Identity | None = None


def mine() -> Identity:
    """This process's identity (made once; a fork's child gets its own)."""
    global _mine
    if _mine is None or _mine.pid != os.getpid():
        _mine = _make()
    return _mine


def parse(data: bytes) -> Identity | None:
    """The identity in a lock file's bytes, or None when they are not one an agent wrote."""
    if len(data) > MAX_LOCK_BYTES:
        return None
    try:
        doc: Any = json.loads(data)
    except ValueError:  # UnicodeDecodeError too
        return None
    if not isinstance(doc, dict) or doc.get("kind") != _KIND:
        return None
    host, pid, uid, started, nonce = (doc.get(k) for k in ("host", "pid", "uid", "started", "nonce"))
    if not (isinstance(host, str) and 0 < len(host) <= 255 and host.isprintable()):
        return None
    if not (isinstance(started, str) and len(started) <= 40 and started.isprintable()):
        return None
    if not (isinstance(nonce, str) and len(nonce) == 32 and all(c in "0123456789abcdef" for c in nonce)):
        return None
    if type(pid) is not int or type(uid) is not int or pid <= 0 or uid < 0:
        return None
    return Identity(host, pid, uid, started, nonce)


def judge(fd: int, st: os.stat_result, trusted_uids: set[int]) -> tuple[str | None, str]:
    """(who holds it, "") for a lock file an agent made; (None, why not) for anything else."""
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    if st.st_uid not in trusted_uids:
        return None, f"owned by uid {st.st_uid}, which no agent here runs as"
    if st.st_size == 0:
        return EARLIER_AGENT, ""
    if st.st_size > MAX_LOCK_BYTES:
        return None, f"{st.st_size} bytes, far more than an agent's identity"
    identity = parse(os.pread(fd, MAX_LOCK_BYTES + 1, 0))
    if identity is None:
        return None, "no agent's identity in it"
    return identity.describe(), ""
