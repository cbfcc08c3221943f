"""One hook process, run for real: its stdin given, its output bounded, its exit told in the log's words,
and the whole of its process group killed past its timeout or when the runner stops."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from watcher.hooks.process import ProcessResult, run_process

SH = "/bin/sh"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def sh(script: str, stdin: bytes = b"", timeout: float = 30.0, **options: Any) -> ProcessResult:
    return run_process([SH, "-c", script], ENV, stdin, timeout, **options)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_hook_that_exits_0_succeeds_with_its_output() -> None:
    result = sh("echo out; echo err >&2")
    assert result.ok and result.failure is None and not result.interrupted
    assert (result.stdout.head, result.stdout.total, result.stdout.omitted) == (b"out\n", 4, 0)
    assert result.stderr.head == b"err\n"


def test_a_hook_gets_its_stdin_and_only_the_environment_given() -> None:
    result = run_process(
        [
            sys.executable,
            "-c",
            "import os,sys; print(sys.stdin.read(), os.environ.get('X'), 'HOME' in os.environ)",
        ],
        {"X": "1"},
        b"event",
        30,
    )
    assert result.ok, result
    assert result.stdout.head == b"event 1 False\n"


def test_a_status_or_a_signal_is_the_failure_in_the_logs_words() -> None:
    assert sh("exit 3").failure == "exited with status 3"
    killed = sh("kill -USR1 $$")
    assert killed.failure == "was killed by SIGUSR1" and not killed.ok and not killed.interrupted


def test_a_program_that_cannot_be_started_is_a_failure_not_an_exception() -> None:
    result = run_process(["/nonexistent/hook"], ENV, b"", 30)
    assert result.failure == "could not be started: No such file or directory"
    assert result.stdout.total == 0


def test_output_past_the_limit_is_counted_not_kept() -> None:
    result = sh("head -c 1000000 /dev/zero; head -c 10 /dev/zero >&2", output_limit=100)
    assert result.ok
    assert (len(result.stdout.head), result.stdout.total, result.stdout.omitted) == (100, 1000000, 999900)
    assert (len(result.stderr.head), result.stderr.total) == (10, 10)


def test_a_large_stdin_is_fed_while_the_output_is_read() -> None:
    """Neither pipe fills up and stalls the hook: cat writes back all it reads."""
    data = os.urandom(3 << 20)
    result = sh("cat", stdin=data, output_limit=16)
    assert result.ok
    assert result.stdout.total == len(data) and result.stdout.head == data[:16]


def test_a_hook_that_does_not_read_its_stdin_is_not_a_failure() -> None:
    assert sh("exec 0<&-; exit 0", stdin=b"x" * (1 << 20)).ok


def test_a_hook_past_its_timeout_is_killed_with_the_children_it_started() -> None:
    started = time.monotonic()
    result = sh("sleep 60 & echo $!; wait", timeout=0.5)
    assert time.monotonic() - started < 10
    assert result.failure == "ran past its 0.5 s timeout and was killed" and not result.interrupted
    child = int(result.stdout.head)
    deadline = time.monotonic() + 5
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(child), "the whole process group was killed"


def test_a_hook_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    started = time.monotonic()
    result = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done", timeout=0.3, kill_grace=0.5)
    took = time.monotonic() - started
    assert result.failure == "ran past its 0.3 s timeout and was killed"
    assert 0.75 < took < 10, took


def test_the_runner_stopping_interrupts_the_hook() -> None:
    abort_read, abort_write = os.pipe()
    timer = threading.Timer(0.3, os.write, (abort_write, b"x"))
    timer.start()
    try:
        started = time.monotonic()
        result = sh("sleep 60", abort_fd=abort_read)
        assert time.monotonic() - started < 10
    finally:
        timer.join()
        os.close(abort_read)
        os.close(abort_write)
    assert result.interrupted and not result.ok
    assert result.failure == "stopped with the agent"


def test_a_hook_that_exits_ends_the_run_even_if_a_child_holds_its_output() -> None:
    started = time.monotonic()
    result = sh("sleep 6 & echo done")
    assert time.monotonic() - started < 5, "read only for the drain time after the hook exits"
    assert result.ok and result.stdout.head == b"done\n"
