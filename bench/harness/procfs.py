"""/proc readings of the processes measured (memory, CPU time, threads, sessions) and the machine's."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _kb(path: str, key: str) -> int:
    """The `key:  N kB` line of a /proc file; 0 when the file or the line is gone."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_status_kb(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a live process in kB; 0 when it is gone."""
    return _kb(f"/proc/{pid}/status", key)


def meminfo_kb(key: str) -> int:
    return _kb("/proc/meminfo", key)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc/PID/stat."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_runtime_ns(pid: int) -> int:
    """Sum of every thread's on-CPU time in ns from /proc/PID/task/*/schedstat (finer than ticks)."""
    total = 0
    for tid in _tasks(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def proc_threads(pid: int) -> int:
    return len(_tasks(pid))


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def inotify_instances(pid: int) -> int:
    """inotify instances a process holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


def inotify_limit(name: str) -> str:
    """fs.inotify.`name` (max_user_instances, max_user_watches), "?" when unreadable."""
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as f:
            return f.read().strip()
    except OSError:
        return "?"


def session_pids(sid: int) -> list[int]:
    """Live processes in session `sid` (a baseline started with start_new_session=True)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat_fields(name)) is not None and int(fields[3]) == sid:
            pids.append(int(name))
    return pids


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_or_kill(proc: subprocess.Popen[Any], timeout: float, kill: Callable[[], None] | None = None) -> None:
    """Wait for a process asked to stop; past `timeout`, kill it (`kill`, or SIGKILL) and reap it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        (kill or proc.kill)()
        proc.wait()
