"""What a test leaves behind: threads still alive and child processes (running or never reaped).

Used by the autouse fixture in tests/conftest.py: a test that starts a thread or a process must have
stopped (and reaped) it by the end of its own teardown.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

# How long threads and processes that are on their way out get before they count as leaked: a stopped
# observer joins its reader, an agent told to stop writes its last sidecars. Paid only when something
# is still there at the end of a test; generous for a loaded machine.
STOPPING_GRACE = 10.0


@dataclass(frozen=True)
class Child:
    pid: int
    state: str  # as /proc/PID/stat says: Z for a child that exited and was never reaped
    command: str

    def __str__(self) -> str:
        what = "exited, never reaped (no wait())" if self.state == "Z" else f"state {self.state}"
        return f"pid {self.pid} ({what}): {self.command}"


def children() -> dict[int, Child]:
    """This process's child processes, whichever of its threads started them.

    Read from every /proc/PID/stat (the parent's pid is its fourth field): /proc/self/task/*/children
    exists only on kernels built with CONFIG_PROC_CHILDREN.
    """
    me = os.getpid()
    found: dict[int, Child] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        comm_end = stat.rfind(b")")
        fields = stat[comm_end + 2 :].split()
        if len(fields) < 2 or int(fields[1]) != me:
            continue
        pid = int(entry.name)
        found[pid] = Child(pid, fields[0].decode(), _command(pid, stat[stat.find(b"(") + 1 : comm_end]))
    return found


def _command(pid: int, comm: bytes) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        argv = []
    line = " ".join(os.fsdecode(a) for a in argv if a)
    return line[:300] if line else f"[{os.fsdecode(comm)}]"


@dataclass(frozen=True)
class Snapshot:
    threads: frozenset[threading.Thread]
    children: frozenset[int]


def snapshot() -> Snapshot:
    return Snapshot(frozenset(threading.enumerate()), frozenset(children()))


def leaked_since(before: Snapshot, grace: float = STOPPING_GRACE) -> list[str]:
    """What is alive now that was not at `before`, once `grace` seconds have passed without it going; one
    line per thread or process, naming it (empty: nothing leaked)."""
    deadline = time.monotonic() + grace
    while True:
        threads = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()]
        kids = [c for pid, c in children().items() if pid not in before.children]
        if (not threads and not kids) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    lines = [f"thread {_describe(t)}" for t in threads]
    lines += [f"child process {c}" for c in kids]
    return lines


def _describe(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)  # a plain Thread's function: says more than its name
    runs = getattr(target, "__qualname__", None) or f"{type(thread).__module__}.{type(thread).__qualname__}"
    return f"{thread.name!r} running {runs} (daemon={thread.daemon})"
