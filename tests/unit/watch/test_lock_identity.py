"""What an agent writes in its lock files, and how another agent judges what it finds at the lock name:
only a regular file owned by a user an agent runs as, empty (an earlier agent) or holding an identity."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from watcher.watch.lock_identity import EARLIER_AGENT, MAX_LOCK_BYTES, Identity, judge, mine, parse

ANOTHER_AGENT = Identity("otherhost", 4242, 0, "2026-12-01T00:00:00Z", "ab" * 16)
ME = os.geteuid()


def test_an_identity_is_only_what_an_agent_writes() -> None:
    good = json.loads(ANOTHER_AGENT.encode())
    assert parse(ANOTHER_AGENT.encode()) == ANOTHER_AGENT
    for bad in (
        b"",
        b"[]",
        b"\xff\xfe",
        json.dumps({**good, "kind": "something else"}).encode(),
        json.dumps({**good, "host": "evil\x1b[2Jhost"}).encode(),
        json.dumps({**good, "pid": True}).encode(),
        json.dumps({**good, "pid": -1}).encode(),
        json.dumps({**good, "nonce": "short"}).encode(),
        json.dumps({**good, "started": "x" * 100}).encode(),
        ANOTHER_AGENT.encode() + b" " * 5000,
    ):
        assert parse(bad) is None, bad[:80]


def test_this_processs_identity_is_made_once_and_a_forks_child_gets_its_own() -> None:
    me = mine()
    assert mine() is me
    assert (me.host, me.pid, me.uid) == (socket.gethostname(), os.getpid(), ME)
    assert me.started.endswith("Z") and parse(me.encode()) == me
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write, mine().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = parse(pipe.read())
    os.waitpid(pid, 0)
    assert child is not None and child.pid == pid and child.nonce != me.nonce


def test_the_description_names_host_pid_uid_and_start() -> None:
    assert ANOTHER_AGENT.describe() == "host otherhost, pid 4242, uid 0, since 2026-12-01T00:00:00Z"


def judged(tmp_path: Path, content: bytes | None, trusted: set[int] | None = None) -> tuple[str | None, str]:
    """What `judge` says of a lock file with `content` (None: a folder at the lock name)."""
    path = tmp_path / "lock"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        return judge(fd, os.fstat(fd), {ME} if trusted is None else trusted)
    finally:
        os.close(fd)


def test_an_agents_lock_file_is_held_by_the_agent_it_names(tmp_path: Path) -> None:
    assert judged(tmp_path, ANOTHER_AGENT.encode()) == (ANOTHER_AGENT.describe(), "")


def test_an_empty_lock_file_is_an_earlier_agents(tmp_path: Path) -> None:
    assert judged(tmp_path, b"") == (EARLIER_AGENT, "")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"planted", "no agent's identity in it"),
        (b"x" * (MAX_LOCK_BYTES + 1), f"{MAX_LOCK_BYTES + 1} bytes, far more than an agent's identity"),
        (None, "not a regular file"),
    ],
)
def test_anything_else_at_the_lock_name_is_nobodys(tmp_path: Path, content: bytes | None, why: str) -> None:
    assert judged(tmp_path, content) == (None, why)


def test_a_lock_file_owned_by_a_user_no_agent_runs_as_is_nobodys(tmp_path: Path) -> None:
    assert judged(tmp_path, ANOTHER_AGENT.encode(), trusted={ME + 1}) == (
        None,
        f"owned by uid {ME}, which no agent here runs as",
    )
