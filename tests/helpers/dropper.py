"""The dropper of THREAT_MODEL.md as a process of another uid (`nobody`): it plants names in a drop
folder and holds locks on files of its own, line by line on command, until it is closed.

It runs only the standard library, so any interpreter `nobody` can execute will do; the test's own
process stays root, as the agent does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.other_user import AS_NOBODY, NOBODY, interpreters

# One command per line; `ok` or `error ...` back for each. `held` keeps what must stay open (locked
# descriptors, a bound socket) for as long as the process lives.
SERVER = r"""
import fcntl, os, socket, sys
held = []

def plant(path, kind):
    if kind == "directory":
        os.mkdir(path)
        open(os.path.join(path, "inside"), "w").close()  # not an empty one: rmdir would not do
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        os.symlink("/etc/passwd", path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen()
        held.append(s)
    else:
        raise ValueError(kind)

def swap_in(path, kind):
    # Whatever is at `path` (the agent's lock file) goes, and `kind` takes its place at once where a
    # rename can do it; a directory cannot be renamed over a file, so that one races the agent.
    if kind == "directory":
        for _ in range(1000):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            try:
                return plant(path, kind)
            except FileExistsError:
                continue
        raise RuntimeError("the agent always made its lock file first")
    temp = path + ".dropper"
    plant(temp, kind)
    os.rename(temp, path)

def hold(path, content=b""):
    # A file of the dropper's own at `path` (renamed over whatever is there), locked as the agent locks.
    temp = path + ".dropper"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, content)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(temp, path)
    held.append(fd)

def clear(path):
    if os.path.isdir(path) and not os.path.islink(path):
        os.unlink(os.path.join(path, "inside"))
        os.rmdir(path)
    else:
        os.unlink(path)

for line in sys.stdin:
    try:
        exec(line, globals())
        print("ok", flush=True)
    except Exception as exc:
        print("error", repr(exc), flush=True)
"""


class Dropper:
    """`with Dropper() as d: d.do("plant(...)")`: each line runs as uid 65534 before `do` returns."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            pytest.skip("needs root and setpriv to act as a second uid (the dropper)")
        python = next((p for p in interpreters() if _runs_as_nobody(p)), None)
        if python is None:
            pytest.skip(f"no interpreter uid {NOBODY} can run; install python3 from the distribution")
        self.proc = subprocess.Popen(
            [*AS_NOBODY, python, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )

    def do(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", f"the dropper failed at {line!r}: {answer or 'it exited'}"

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Dropper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _runs_as_nobody(python: str) -> bool:
    try:
        done = subprocess.run([*AS_NOBODY, python, "-c", "import fcntl, socket"], cwd="/", timeout=30,
                              capture_output=True)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def other_process_holds(path: str, content: bytes = b"") -> subprocess.Popen[str]:
    """A process of this uid (root, as another agent would be) holding a lock on `path`, made with
    `content` if it is not there; ends when its stdin closes."""
    code = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
        "os.write(fd, sys.argv[2].encode()) if sys.argv[2] else None; "
        "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('locked', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, path, content.decode()], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def let_go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()
