"""Many folders share one inotify instance and one thread: more folders than the kernel's default 128
instances per user, and none falls back to polling; where inotify runs out of watches or instances, the
folders are polled and one error line says which limit to raise."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACCOUNT_A, wait_sidecar
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator


def test_two_hundred_folders_are_all_watched_by_inotify(
    start_agent, tmp_path: Path, emulator: Emulator
) -> None:
    agent = start_agent(make_folders(tmp_path, 200))
    assert agent.proc is not None
    assert inotify_instances(agent.proc.pid) == 1
    assert "polling" not in agent.log()
    last = tmp_path / "folder-199" / "late.png"
    last.write_bytes(png_bytes(9501))
    wait_sidecar(last, timeout=15)


def make_folders(tmp_path: Path, count: int) -> list[dict[str, Any]]:
    """`count` empty folders `folder-000`... of account A, as the config lists them."""
    folders = []
    for i in range(count):
        folder = tmp_path / f"folder-{i:03}"
        folder.mkdir()
        folders.append({"path": str(folder), "account": ACCOUNT_A})
    return folders


def inotify_instances(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += "inotify" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
    return count


def test_three_hundred_folders_run_on_a_handful_of_threads(
    start_agent, tmp_path: Path, emulator: Emulator
) -> None:
    """One reader thread for every inotify-watched folder, not an emitter thread per folder (watchdog's
    observer had 313 threads here)."""
    agent = start_agent(make_folders(tmp_path, 300))
    assert agent.proc is not None
    last = tmp_path / "folder-299" / "late.png"
    last.write_bytes(png_bytes(9502))
    wait_sidecar(last, timeout=15)
    threads = len(os.listdir(f"/proc/{agent.proc.pid}/task"))
    assert threads <= 20, f"{threads} threads for 300 folders"
    assert inotify_instances(agent.proc.pid) == 1
    assert "polling" not in agent.log()


def test_a_recursive_folder_out_of_watches_falls_back_to_polling(
    start_agent, tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subfolder made once every inotify watch allowed is in use: the folder is polled from then on,
    and one error line says which limit to raise, to what (watchdog swallowed this: the subfolder's
    files waited for the next rescan)."""
    drop = tmp_path / "drop"
    for sub in ("one", "two"):
        (drop / sub).mkdir(parents=True)
    with own_inotify_limits(tmp_path, monkeypatch, watches=3):  # the folder and its two subfolders
        agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
    assert f"watching {drop} (inotify, recursive" in agent.log()

    (drop / "three").mkdir()
    late = drop / "three" / "late.png"
    late.write_bytes(png_bytes(9503))
    wait_sidecar(late, timeout=15)
    # The subfolders that were watched by inotify are polled now.
    after = drop / "one" / "after.png"
    after.write_bytes(png_bytes(9504))
    wait_sidecar(after, timeout=15)
    errors = limit_errors(agent.log())
    assert len(errors) == 1, agent.log()
    # Four watches: the folder and three subfolders; nothing else of this user uses any.
    assert "user.max_inotify_watches (now 3" in errors[0] and "to at least 4," in errors[0], errors
    assert "fs.inotify.max_user_watches" in errors[0], errors
    assert f"(at {drop / 'three'})" in errors[0], errors


def test_a_folder_with_more_subfolders_than_watches_left_is_polled_from_the_start(
    start_agent, tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    for sub in ("one", "two", "two/deeper", ".hidden"):
        (drop / sub).mkdir(parents=True)
    with own_inotify_limits(tmp_path, monkeypatch, watches=2):
        agent = start_agent([{"path": str(drop), "account": ACCOUNT_A, "recursive": True}])
    # The start-up scan watches the subfolders as it lists them: it runs out at the second one, before
    # READY, and the folder is polled from then on.
    assert "polling this folder instead" in agent.log(), agent.log()
    image = drop / "two" / "deeper" / "image.png"
    image.write_bytes(png_bytes(9505))
    wait_sidecar(image, timeout=15)
    errors = limit_errors(agent.log())
    assert len(errors) == 1, agent.log()
    assert "user.max_inotify_watches (now 2" in errors[0] and "to at least 4," in errors[0], errors


def test_no_inotify_instance_left_polls_every_folder_and_says_so_once(
    start_agent, tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = []
    for i in range(3):
        (tmp_path / f"folder-{i}").mkdir()
        folders.append({"path": str(tmp_path / f"folder-{i}"), "account": ACCOUNT_A})
    with own_inotify_limits(tmp_path, monkeypatch, instances=0):
        agent = start_agent(folders)
    assert agent.log().count("(polling (inotify exhausted)") == 3, agent.log()
    last = tmp_path / "folder-2" / "late.png"
    last.write_bytes(png_bytes(9506))
    wait_sidecar(last, timeout=15)
    errors = limit_errors(agent.log())
    assert len(errors) == 1, agent.log()
    assert "user.max_inotify_instances (now 0" in errors[0] and "to at least 1," in errors[0], errors


def limit_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line and "inotify" in line and "limit" in line]


@contextmanager
def own_inotify_limits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    watches: int | None = None,
    instances: int | None = None,
) -> Iterator[None]:
    """Agents started within run in a user namespace of their own, whose inotify limits are these.

    The kernel's own limits, lowered for that agent alone: a user namespace bounds its processes by its
    user.max_inotify_* (as well as by the host's fs.inotify.max_user_*, which stay as they are, as do
    every other process's watches). Skips where user namespaces cannot be made.
    """
    settings = {"watches": watches, "instances": instances}
    limits = " && ".join(
        f"echo {value} > /proc/sys/user/max_inotify_{what}"
        for what, value in settings.items()
        if value is not None
    )
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", limits],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot lower inotify limits in a user namespace here: {probe.stderr.strip()}")
    wrapper = tmp_path / "python-in-own-user-namespace"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec unshare --user --map-root-user sh -c \'{limits} && exec "$0" "$@"\' {shlex.quote(sys.executable)} "$@"\n'
    )
    wrapper.chmod(0o755)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "executable", str(wrapper))  # what tests.helpers.agent starts the agent with
        yield
