"""The seal key in the state folder is an operator's file like any other: a short one, a directory, a
FIFO or a symlink in its place gives one clear line and a way on (a new key), never a crash loop or a
start that hangs (N12)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator
from watcher.state.seal import SEAL_KEY_FILE, SidecarSeal, load_seal_key

pytestmark = pytest.mark.hostile


def load_within(state: Path, seconds: float = 30.0) -> bytes:
    """`load_seal_key` in a thread with a deadline: a FIFO must not hang it (the test fails instead)."""
    result: list[bytes | BaseException] = []

    def run() -> None:
        try:
            result.append(load_seal_key(state))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if not result:
        # Unblock a reader stuck on the FIFO so the thread ends, then fail.
        fd = os.open(state / SEAL_KEY_FILE, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(seconds)
        raise AssertionError("load_seal_key blocked on the key file")
    value = result[0]
    if isinstance(value, BaseException):
        raise AssertionError(f"load_seal_key raised {type(value).__name__}: {value}")
    return value


@pytest.mark.parametrize("length", [0, 5, 15, 16, 31])
def test_a_short_key_is_replaced_by_a_new_one_with_one_warning(
    tmp_path: Path, length: int, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / SEAL_KEY_FILE).write_bytes(b"k" * length)
    key = load_within(state)
    assert len(key) == 32 and SidecarSeal(key)  # usable
    assert (state / SEAL_KEY_FILE).read_bytes() == key  # replaced on disk: the next start is quiet
    assert load_within(state) == key
    warnings = [r for r in caplog.records if "too short" in r.getMessage()]
    assert len(warnings) == 1 and "no longer lend" in warnings[0].getMessage()


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_symlink(path: Path) -> None:
    target = path.with_name("elsewhere")
    target.write_bytes(b"x" * 32)
    path.symlink_to(target)


def make_socket(path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


@pytest.mark.parametrize("make", [make_fifo, make_symlink, make_socket], ids=["fifo", "symlink", "socket"])
def test_a_key_file_that_is_not_a_regular_file_is_replaced(
    tmp_path: Path, make: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    make(state / SEAL_KEY_FILE)
    key = load_within(state)
    assert len(key) == 32
    path = state / SEAL_KEY_FILE
    assert path.is_file() and not path.is_symlink() and path.read_bytes() == key
    if make is make_symlink:
        assert (state / "elsewhere").read_bytes() == b"x" * 32  # never written through
    assert any("replaced it with a new key" in r.getMessage() for r in caplog.records)


def test_a_directory_in_place_of_the_key_gives_a_key_for_this_run_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    (state / SEAL_KEY_FILE / "inside").mkdir(parents=True)
    first, second = load_within(state), load_within(state)
    assert len(first) == 32 and first != second  # one per process: nothing lent across runs
    assert (state / SEAL_KEY_FILE / "inside").is_dir()  # nothing of the operator's removed
    assert any("this run only" in r.getMessage() for r in caplog.records)


def test_the_agent_starts_and_uploads_with_a_short_seal_key(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    state = tmp_path / "state" / "minimax-watcher"
    state.mkdir(parents=True)
    (state / SEAL_KEY_FILE).write_bytes(b"0123456789")  # 10 bytes: a RecursionError at every start
    agent = AgentProcess(tmp_path, emulator.base_url, [{"path": str(drop), "account": "111111"}])
    try:
        agent.start()
        (drop / "a.png").write_bytes(png_bytes(31))
        wait_sidecar(drop / "a.png", timeout=30)
    finally:
        code = agent.stop()
    log = agent.log()
    assert code == 0, log
    assert "Traceback" not in log and "RecursionError" not in log, log
    assert log.count("is too short") == 1, log
    assert len((state / SEAL_KEY_FILE).read_bytes()) == 32
