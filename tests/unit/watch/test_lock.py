"""The folder lock (SPEC §6c) against real files and real POSIX locks held by other processes: another
agent makes this one stand by; nothing else at the lock name does (THREAT_MODEL rule 2)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.dropper import Dropper, let_go, other_process_holds
from watcher.watch.lock import LOCK_NAME, FolderLock, LockState
from watcher.watch.lock_identity import EARLIER_AGENT, Identity, mine, parse

ANOTHER_AGENT = Identity("otherhost", 4242, 0, "2026-12-01T00:00:00Z", "ab" * 16)


@pytest.fixture
def drop() -> Iterator[Path]:
    """A drop folder the dropper (uid 65534) can write, as the `minimax-drop` group can."""
    top = Path(tempfile.mkdtemp(prefix="mmw-lock-", dir="/tmp"))
    top.chmod(0o755)
    folder = top / "drop"
    folder.mkdir()
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(top, ignore_errors=True)


def identity_at(drop: Path) -> Identity | None:
    return parse((drop / LOCK_NAME).read_bytes())


def test_an_agent_makes_its_own_lock_file_whole_and_private(drop: Path) -> None:
    lock = FolderLock(str(drop))
    assert lock.try_acquire().state is LockState.HELD
    st = (drop / LOCK_NAME).lstat()
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid() and st.st_nlink == 1
    assert identity_at(drop) == mine() and mine().pid == os.getpid()
    assert os.listdir(drop) == [LOCK_NAME]  # no temporary left beside it
    assert lock.is_current()
    lock.release()


def test_another_agent_holding_the_folder_makes_it_stand_by_and_says_who(drop: Path) -> None:
    holder = other_process_holds(str(drop / LOCK_NAME), ANOTHER_AGENT.encode())
    lock = FolderLock(str(drop))
    try:
        got = lock.try_acquire()
        assert got.state is LockState.STANDBY and got.detail == ANOTHER_AGENT.describe()
        assert identity_at(drop) == ANOTHER_AGENT  # left alone
    finally:
        let_go(holder)
    # It let go: taken over, and the file at the name is now this agent's.
    assert lock.try_acquire().state is LockState.HELD
    assert identity_at(drop) == mine() and lock.is_current()
    lock.release()


def test_a_held_empty_lock_file_of_an_earlier_agent_is_stood_by_for(drop: Path) -> None:
    holder = other_process_holds(str(drop / LOCK_NAME))
    try:
        got = FolderLock(str(drop)).try_acquire()
        assert (got.state, got.detail) == (LockState.STANDBY, EARLIER_AGENT)
    finally:
        let_go(holder)


def test_a_dead_agent_s_lock_file_is_taken_and_made_this_agent_s(drop: Path) -> None:
    (drop / LOCK_NAME).write_bytes(ANOTHER_AGENT.encode())
    lock = FolderLock(str(drop))
    assert lock.try_acquire().state is LockState.HELD
    assert identity_at(drop) == mine() and lock.is_current()
    lock.release()


@pytest.mark.parametrize(
    ("content", "mode"),
    [(b"", 0o644), (b"x" * 100_000, 0o644), (ANOTHER_AGENT.encode(), 0o644), (ANOTHER_AGENT.encode(), 0)],
    ids=["empty", "huge", "a forged identity", "unreadable"],
)
def test_a_lock_the_dropper_holds_on_a_file_of_their_own_keeps_no_agent_out(
    drop: Path, content: bytes, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    with Dropper() as dropper:
        dropper.do(
            f"hold({str(drop / LOCK_NAME)!r}, {content!r}); os.chmod({str(drop / LOCK_NAME)!r}, {mode})"
        )
        assert (drop / LOCK_NAME).stat().st_uid == 65534
        lock = FolderLock(str(drop))
        with caplog.at_level(logging.WARNING, logger="watcher"):
            assert lock.try_acquire().state is LockState.HELD
        assert identity_at(drop) == mine() and (drop / LOCK_NAME).stat().st_uid == os.geteuid()
        assert sorted(os.listdir(drop)) == [LOCK_NAME]  # theirs is gone from the folder, nothing aside
        [line] = [r.getMessage() for r in caplog.records]
        assert "replaced .minimax-watcher.lock" in line and "owned by uid 65534" in line
        lock.release()


def test_a_file_of_the_agent_s_own_user_without_an_identity_held_by_another_process_is_replaced(
    drop: Path,
) -> None:
    holder = other_process_holds(str(drop / LOCK_NAME), b"not an identity")
    try:
        lock = FolderLock(str(drop))
        assert lock.try_acquire().state is LockState.HELD
        assert identity_at(drop) == mine()
        lock.release()
    finally:
        let_go(holder)


@pytest.mark.parametrize("kind", ["directory", "socket", "fifo", "symlink"])
def test_what_is_not_a_lock_file_at_the_name_blocks_the_folder_and_is_left_alone(
    drop: Path, kind: str
) -> None:
    with Dropper() as dropper:
        dropper.do(f"plant({str(drop / LOCK_NAME)!r}, {kind!r})")
        got = FolderLock(str(drop)).try_acquire()  # a FIFO is never opened: this does not hang
        assert got.state is LockState.BLOCKED
        article = "a FIFO" if kind == "fifo" else f"a {kind}"
        assert got.detail == f"{drop / LOCK_NAME} is {article}, not a lock file: remove it"
        assert sorted(os.listdir(drop)) == [LOCK_NAME]
        dropper.do(f"clear({str(drop / LOCK_NAME)!r})")
    lock = FolderLock(str(drop))
    assert lock.try_acquire().state is LockState.HELD  # looked at again once it is gone
    lock.release()


def test_a_lock_file_replaced_under_the_holder_is_no_longer_current(drop: Path) -> None:
    lock = FolderLock(str(drop))
    assert lock.try_acquire().state is LockState.HELD
    with Dropper() as dropper:
        dropper.do(f"hold({str(drop / LOCK_NAME)!r})")
        assert not lock.is_current()
        lock.release()
        assert lock.try_acquire().state is LockState.HELD and lock.is_current()
    lock.release()


RACE = """
import sys
from watcher.watch.lock import FolderLock
lock = FolderLock(sys.argv[1])
sys.stdin.readline()
print(lock.try_acquire().state.value, flush=True)
sys.stdin.read()
"""


def test_agents_racing_for_a_folder_the_dropper_locked_end_with_one_holder(drop: Path) -> None:
    """Each agent replaces the dropper's file, or finds another agent's: never two holders."""
    with Dropper() as dropper:
        for _ in range(5):
            dropper.do(f"hold({str(drop / LOCK_NAME)!r})")
            agents = [subprocess.Popen([sys.executable, "-c", RACE, str(drop)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
            try:
                for agent in agents:
                    assert agent.stdin is not None
                    agent.stdin.write("go\n")
                    agent.stdin.flush()
                states = sorted(a.stdout.readline().strip() for a in agents if a.stdout is not None)
            finally:
                for agent in agents:
                    let_go(agent)  # type: ignore[arg-type]
            assert states == ["held", "standby", "standby", "standby"], states
            assert identity_at(drop) is not None


AS_SERVICE_USER = """
import sys
from watcher.watch.lock import FolderLock
got = FolderLock(sys.argv[1]).try_acquire()
print(got.state.value, got.detail, sep="\\n")
"""


@pytest.mark.parametrize("sticky", [False, True], ids=["plain", "sticky"])
def test_an_agent_running_as_a_service_user_replaces_the_dropper_s_file_or_says_it_cannot(
    drop: Path, sticky: bool
) -> None:
    """As a user other than root (uid 65533 here), the agent cannot open the dropper's file; it moves it
    aside all the same, unless the folder's sticky bit forbids that: then one line says to remove it."""
    drop.chmod(0o1777 if sticky else 0o777)
    with Dropper() as dropper:
        dropper.do(f"hold({str(drop / LOCK_NAME)!r})")
        as_uid = ["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups"]
        done = subprocess.run([*as_uid, sys.executable, "-c", AS_SERVICE_USER, str(drop)], cwd="/", timeout=60,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})  # fmt: skip
        if "No module named" in done.stderr:
            pytest.skip("uid 65533 cannot reach this interpreter or checkout")
        assert done.returncode == 0, done.stderr
        state, detail = done.stdout.splitlines()
        if sticky:
            assert state == "blocked" and (drop / LOCK_NAME).stat().st_uid == 65534
            assert detail == (f"{drop / LOCK_NAME} (owned by uid 65534, which no agent here runs as) is not an "
                              "agent's lock file and cannot be replaced (Operation not permitted): remove it")  # fmt: skip
        else:
            assert state == "held" and (drop / LOCK_NAME).stat().st_uid == 65533
