"""Nothing outside a watched folder is read or written through it (SPEC §7), end to end.

A subfolder of a recursive folder is swapped for a symlink to an outside directory while a file in it
settles or uploads. The agent must neither upload the outside file nor write a sidecar beside it.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import ACCOUNT_A, sidecar_of, wait_for, wait_sidecar
from tests.helpers.images import png_bytes, sha256
from watcher.emulator import Emulator, Fault


def assert_never(happened: Callable[[], object], seconds: float, what: str) -> None:
    """Fail as soon as `happened()` turns truthy; pass when it stayed false for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not happened(), what
        time.sleep(0.05)
    assert not happened(), what


def exchange(a: Path, b: Path) -> None:
    """Swap two names in one step (renameat2 RENAME_EXCHANGE), so neither is ever missing.

    A plain `mv` then `ln -s` leaves a moment with no name at all; an agent that looks then simply
    forgets the file, and the escape this tests for would go unexercised by luck of timing.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def received(emulator: Emulator, data: bytes) -> bool:
    """Whether any request the emulator saw carried exactly these bytes."""
    return any(r.sha256 == sha256(data) for r in emulator.requests)


def test_a_subfolder_swapped_for_a_symlink_while_its_file_settles_leaks_nothing(
    start_agent, drop: Path, tmp_path: Path, emulator: Emulator
) -> None:
    settle = 3.0
    sub = drop / "sub"
    sub.mkdir()
    # One upload at a time: the control file's job is queued behind anything the swapped file got.
    agent = start_agent(
        [{"path": str(drop), "account": ACCOUNT_A, "recursive": True}], settle_seconds=settle, concurrency=1
    )
    secret = tmp_path / "secret"
    secret.mkdir()
    secret_bytes = png_bytes(901)
    (secret / "a.png").write_bytes(secret_bytes)
    (tmp_path / "away").symlink_to(secret, target_is_directory=True)

    # Without its IEND chunk the PNG does not look complete, so it waits the full settle time...
    (sub / "a.png").write_bytes(png_bytes(900)[:-12])
    # ...during which `mv drop/sub away; ln -s <secret> drop/sub` happens, as one atomic swap: `away`
    # ends up holding the subfolder and `drop/sub` is the symlink.
    exchange(tmp_path / "away", drop / "sub")
    assert (drop / "sub").is_symlink() and (tmp_path / "away" / "a.png").is_file()

    # Twice the settle time: the first look sees another file (the secret one) and starts it over.
    assert_never(
        lambda: received(emulator, secret_bytes) or sidecar_of(secret / "a.png").exists(),
        2 * settle + 2,
        "the agent uploaded or wrote beside a file outside the watched folder",
    )
    control = drop / "control.png"
    control.write_bytes(png_bytes(902))
    wait_sidecar(control, timeout=20)

    assert not received(emulator, secret_bytes)
    assert sorted(p.name for p in secret.iterdir()) == ["a.png"]
    assert sorted(p.name for p in (tmp_path / "away").iterdir()) == ["a.png"]
    assert "Traceback" not in agent.log()


def test_a_subfolder_swapped_for_a_symlink_during_the_upload_gets_no_sidecar_outside(
    start_agent, drop: Path, tmp_path: Path, emulator: Emulator
) -> None:
    sub = drop / "sub"
    sub.mkdir()
    emulator.add_fault(Fault(kind="slow", delay=2))
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
    data = png_bytes(910)
    (sub / "a.png").write_bytes(data)
    emulator.wait_for_held(1, timeout=20)

    # The folder moves out with its file, and a symlink to it takes its place: the same file, same
    # inode and mtime, now reached through a path that leaves the watched folder.
    away = tmp_path / "away"
    (drop / "sub").rename(away)
    (drop / "sub").symlink_to(away, target_is_directory=True)

    wait_for(lambda: len(emulator.uploads) == 1, 20, "the held upload to be answered")
    wait_for(lambda: "sub/a.png: " in agent.log(), 20, "the agent to log what it made of the answer")

    assert not sidecar_of(away / "a.png").exists(), "a sidecar was written outside the watched folder"
    assert sorted(p.name for p in away.iterdir()) == ["a.png"]
    control = drop / "control.png"
    control.write_bytes(png_bytes(911))
    wait_sidecar(control, timeout=20)
    assert not sidecar_of(away / "a.png").exists()
    assert [u.sha256 for u in emulator.uploads] == [sha256(data), sha256(png_bytes(911))]
    assert "Traceback" not in agent.log()
