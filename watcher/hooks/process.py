"""One hook process: no shell, its own process group, its stdin given, its output read (the first bytes
kept), and the whole group killed past its timeout.

The group is signalled only while its leader is unreaped, so `killpg` cannot hit a stranger. See
docs/architecture.md, 'Hooks'.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
OUTPUT_LIMIT = 4096  # bytes of each of stdout and stderr kept for the log
# After the hook exits, how long output still in flight (or held open by a child it left) is read.
DRAIN_SECONDS = 0.5
# Without a pidfd (kernels before 5.3, or a seccomp filter refusing it) the exit is polled this often.
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Captured:
    """The first bytes a stream wrote, and how many it wrote in all."""

    head: bytes = b""
    total: int = 0

    @property
    def omitted(self) -> int:
        return self.total - len(self.head)


@dataclass(frozen=True)
class ProcessResult:
    stdout: Captured
    stderr: Captured
    failure: str | None  # why the run failed, as the log says it; None when the hook exited 0
    interrupted: bool = False  # ended by the runner stopping: neither a success nor the hook's failure

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.interrupted


class _Sink:
    def __init__(self, limit: int) -> None:
        self.head = bytearray()
        self.total = 0
        self.limit = limit

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.total += len(chunk)

    def captured(self) -> Captured:
        return Captured(bytes(self.head), self.total)


def run_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: bytes,
    timeout: float,
    *,
    abort_fd: int | None = None,
    kill_grace: float = KILL_GRACE,
    output_limit: int = OUTPUT_LIMIT,
) -> ProcessResult:
    """Run `argv` to its end, or kill its process group after `timeout` seconds or once `abort_fd`
    becomes readable (then the result is `interrupted`)."""
    out, err = _Sink(output_limit), _Sink(output_limit)
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so that the whole of it can be killed
            close_fds=True,
        )
    except OSError as exc:
        return ProcessResult(out.captured(), err.captured(), f"could not be started: {exc.strerror or exc}")
    except (ValueError, subprocess.SubprocessError) as exc:
        return ProcessResult(out.captured(), err.captured(), f"could not be started: {exc}")
    with proc:
        pidfd = _pidfd(proc.pid)
        ending = "broken"  # until _exchange says otherwise: also kills the hook if _exchange raised
        try:
            ending = _exchange(proc, pidfd, stdin, time.monotonic() + timeout, abort_fd, out, err)
        finally:
            if ending != "exited":
                _kill_group(proc.pid, pidfd, kill_grace)
            if pidfd is not None:
                os.close(pidfd)
            # Output still in flight is not wanted now; closing our ends first means a child left
            # holding them gets EPIPE rather than blocking.
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
        returncode = proc.wait()
    if ending == "aborted":
        return ProcessResult(out.captured(), err.captured(), "stopped with the agent", interrupted=True)
    if ending == "timeout":
        return ProcessResult(
            out.captured(), err.captured(), f"ran past its {timeout:g} s timeout and was killed"
        )
    if returncode == 0:
        return ProcessResult(out.captured(), err.captured(), None)
    if returncode < 0:
        return ProcessResult(out.captured(), err.captured(), f"was killed by {_signal_name(-returncode)}")
    return ProcessResult(out.captured(), err.captured(), f"exited with status {returncode}")


def _exchange(
    proc: subprocess.Popen[bytes],
    pidfd: int | None,
    stdin: bytes,
    deadline: float,
    abort_fd: int | None,
    out: _Sink,
    err: _Sink,
) -> str:
    """Feed stdin and read the output until the hook exits (`exited`), the deadline passes (`timeout`)
    or `abort_fd` is readable (`aborted`)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as selector:
        readers = 0
        for pipe, sink in ((proc.stdout, out), (proc.stderr, err)):
            os.set_blocking(pipe.fileno(), False)
            selector.register(pipe.fileno(), selectors.EVENT_READ, sink)
            readers += 1
        pending = memoryview(stdin)
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
        else:
            proc.stdin.close()
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        if abort_fd is not None:
            selector.register(abort_fd, selectors.EVENT_READ, "abort")
        exited_at: float | None = None
        while True:
            now = time.monotonic()
            if exited_at is None and pidfd is None and _has_exited(proc.pid):
                exited_at = now
            if exited_at is not None and (
                readers == 0 or now >= exited_at + DRAIN_SECONDS or now >= deadline
            ):
                return "exited"
            if now >= deadline:
                return "timeout"
            wait = deadline - now
            if exited_at is not None:
                wait = min(wait, exited_at + DRAIN_SECONDS - now)
            if pidfd is None:
                wait = min(wait, POLL_SECONDS)
            for key, _ in selector.select(max(0.0, wait)):
                if key.data == "abort":
                    return "aborted"
                if key.data == "exit":
                    exited_at = time.monotonic()
                    selector.unregister(key.fd)
                elif key.data == "stdin":
                    pending = _feed(key.fd, pending)
                    if not pending:
                        selector.unregister(key.fd)
                        proc.stdin.close()
                elif isinstance(key.data, _Sink):
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        key.data.add(chunk)
                    else:
                        selector.unregister(key.fd)
                        readers -= 1


def _feed(fd: int, pending: memoryview) -> memoryview:
    """Write what the pipe takes now; a hook that exits or closes stdin unread just gets no more."""
    try:
        return pending[os.write(fd, pending) :]
    except BlockingIOError:
        return pending
    except OSError:  # EPIPE: the hook does not read its stdin, which is its right
        return memoryview(b"")


def _kill_group(pid: int, pidfd: int | None, grace: float) -> None:
    """SIGTERM to the hook's process group, then SIGKILL to whatever of it is left after `grace`."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _has_exited(pid):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if pidfd is not None:
            _wait_readable(pidfd, left)
        else:
            time.sleep(min(left, POLL_SECONDS))
    # Also when the leader went at SIGTERM: a child that ignores SIGTERM is still in the group. The
    # leader is not reaped yet, so the group's id is still ours to signal.
    _signal_group(pid, signal.SIGKILL)


def _wait_readable(fd: int, timeout: float) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        selector.select(timeout)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (or what is left of it is no longer ours to signal)


def _has_exited(pid: int) -> bool:
    """Whether the hook has exited, without reaping it (WNOWAIT): its id stays reserved until wait()."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
