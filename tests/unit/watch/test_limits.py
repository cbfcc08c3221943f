"""The inotify limit hint, from the real sysctls: which one to raise and to what, counting the watches the
folder needs, and naming a user namespace's own lower limit where there is one."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.core.folders import Folder
from watcher.watch.inotify import OutOfWatches
from watcher.watch.limits import queued_events_limit, raise_limit_hint


def sysctl(path: str) -> int:
    return int(Path("/proc/sys", path).read_text())


def test_the_limit_hint_counts_the_watches_the_folder_needs(tmp_path: Path) -> None:
    for sub in ("a", "a/b", "c", ".hidden", ".hidden/x"):
        (tmp_path / sub).mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    current = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    folder = Folder(str(tmp_path), None, True, False)
    hint = raise_limit_hint(OutOfWatches(str(tmp_path / "c"), held=2), folder)
    # The folder and a, a/b, c: not the dot-folders, not the link; 2 of them were held when it ran out.
    assert f"fs.inotify.max_user_watches (now {current}) to at least {current - 2 + 4}" in hint
    instances = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    hint = raise_limit_hint(OSError(errno.EMFILE, "inotify instance limit reached"), folder)
    assert f"fs.inotify.max_user_instances (now {instances}) to at least {instances + 1}" in hint


def test_a_folder_not_watched_recursively_needs_one_watch_and_the_hint_suggests_twice_the_need(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    current = sysctl("fs/inotify/max_user_watches")
    hint = raise_limit_hint(OutOfWatches(str(tmp_path), held=0), Folder(str(tmp_path), None, False, False))
    assert hint == (
        f"Raise fs.inotify.max_user_watches (now {current}) to at least {current + 1}, "
        f"e.g. sysctl -w fs.inotify.max_user_watches={2 * (current + 1)}"
    )


def test_the_instances_hint_suggests_at_least_256(tmp_path: Path) -> None:
    current = sysctl("fs/inotify/max_user_instances")
    hint = raise_limit_hint(OSError(errno.EMFILE, "too many"), Folder(str(tmp_path), None, True, False))
    assert hint.endswith(f"e.g. sysctl -w fs.inotify.max_user_instances={max(2 * current, 256)}")


def test_the_queue_limit_is_the_kernels() -> None:
    assert queued_events_limit() == sysctl("fs/inotify/max_queued_events")


IN_A_NAMESPACE = """
import errno, pathlib, sys
pathlib.Path("/proc/sys/user/max_inotify_watches").write_text("100")
from watcher.core.folders import Folder
from watcher.watch.inotify import OutOfWatches
from watcher.watch.limits import raise_limit_hint
print(raise_limit_hint(OutOfWatches(sys.argv[1], held=0), Folder(sys.argv[1], None, False, False)))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1)")
def test_in_a_user_namespace_with_a_lower_limit_of_its_own_that_one_is_named(tmp_path: Path) -> None:
    host = sysctl("fs/inotify/max_user_watches")
    if host <= 100:
        pytest.skip("the host's own limit is no higher than the namespace's would be")
    run = subprocess.run(
        ["unshare", "-Ur", sys.executable, "-c", IN_A_NAMESPACE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[3],
    )
    if run.returncode != 0 and "unshare" in run.stderr:
        pytest.skip(f"no user namespace here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        "Raise user.max_inotify_watches (now 100, this user namespace's limit; the host's "
        f"fs.inotify.max_user_watches is {host}) to at least 101, e.g. sysctl -w user.max_inotify_watches=202"
    )
