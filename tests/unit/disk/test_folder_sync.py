"""Group commit of folder fsyncs, on real folders: every folder asked for is fsynced once per gathering,
whatever the number of names made in it, before `flush` returns; nothing is left open or running."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from watcher.disk.folder_sync import FolderSyncs
from watcher.disk.records import write_json_atomically


def test_folder_fsyncs_asked_for_many_names_are_done_and_leave_no_descriptor_open(tmp_path: Path) -> None:
    syncs = FolderSyncs()
    syncs.start()
    before = set(os.listdir("/proc/self/fd"))
    for i in range(50):
        write_json_atomically(str(tmp_path / f"{i}.png.json"), {"i": i}, sync_folder=syncs.request)
    syncs.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.png.json" for i in range(50))
    # Gathered: one fsync covers every name made in the folder meanwhile, not one fsync per name.
    assert 1 <= syncs.fsyncs < 25
    syncs.stop()
    write_json_atomically(str(tmp_path / "late.png.json"), {}, sync_folder=syncs.request)  # synchronous now
    assert set(os.listdir("/proc/self/fd")) <= before | {str(n) for n in range(3)}


def folder_fd(path: Path, flags: int = os.O_RDONLY) -> int:
    return os.open(path, flags | os.O_DIRECTORY)


def test_each_folder_gets_its_own_fsync_and_one_folder_under_two_descriptors_one(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fds = [folder_fd(tmp_path / "a"), folder_fd(tmp_path / "a", os.O_PATH), folder_fd(tmp_path / "b")]
    syncs = FolderSyncs()
    syncs.start()
    try:
        syncs.flush()  # nothing asked for: returns at once
        assert syncs.fsyncs == 0
        for fd in fds:
            syncs.request(fd)
        syncs.flush()
        assert syncs.fsyncs == 2, "a and b, a once though asked for twice (once through an O_PATH)"
        syncs.request(fds[0])
        syncs.flush()
        assert syncs.fsyncs == 3, "asked for again after its fsync: fsynced again"
        for fd in fds:
            os.fstat(fd)  # the caller's descriptors stay open: the thread fsyncs its own
    finally:
        syncs.stop()
        for fd in fds:
            os.close(fd)


def test_before_start_and_after_stop_a_request_is_done_at_once_and_the_thread_is_gone(tmp_path: Path) -> None:
    fd = folder_fd(tmp_path)
    syncs = FolderSyncs()
    before = set(threading.enumerate())
    try:
        syncs.request(fd)  # not started: fsynced in the caller's thread
        syncs.start()
        (thread,) = set(threading.enumerate()) - before
        syncs.stop()
        syncs.request(fd)
        assert syncs.fsyncs == 0, "neither went through the thread"
        os.fstat(fd)  # still the caller's, still open
    finally:
        os.close(fd)
    thread.join(5)
    assert not thread.is_alive(), "stop() ends the thread"
