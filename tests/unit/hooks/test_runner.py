"""Hooks (SPEC §6b) with real processes: the exact environment and stdin, no token, retries and giving
up, the timeout killing the whole process group, runs surviving kill -9, the concurrency bound, and
bounded, redacted output in the log."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TOKEN, wait_for
from watcher.config.load import HooksSettings
from watcher.core.folders import Folder
from watcher.core.retry import RetryPolicy
from watcher.hooks import process as hook_process
from watcher.hooks.journal import RUNS
from watcher.hooks.runner import HookEvent, HookRunner
from watcher.redact import register_secret
from watcher.report.logs import add_filters
from watcher.state.journal import Journal

FAST_RETRY = RetryPolicy(base=0.05, cap=0.2, jitter=False)
FOLDER = Folder(path="/srv/drop/alice", account="111111", recursive=False, polling=False)
IMAGE = "/srv/drop/alice/cat.png"
SIDECAR = {
    "fileID": "user:4242-minimax:111111-file:987654321",
    "ossPath": "https://oss.example/cat.png",
    "account": "111111",
    "file": "cat.png",
    "size": 1234,
    "mtime_ns": 1700000000000000000,
    "ino": 42,
    "sha256": "ab" * 32,
    "contentType": "image/png",
    "uploadedAt": "2026-05-01T12:00:00Z",
}
ERROR_RECORD = {
    "error": "the API refused it: bad image",
    "code": 400,
    "attempts": 1,
    "failedAt": "x",
    "size": 3,
}

# Each hook below is a Python script run as [python, script, args...]: an argv list, no shell.
RECORD = """
    import json, os, sys
    # The environment exactly as the kernel handed it over, before Python could adjust anything.
    with open("/proc/self/environ", "rb") as f:
        raw = f.read()
    env = dict(item.decode("utf-8", "surrogateescape").split("=", 1) for item in raw.split(b"\\0") if item)
    data = {"env": env, "raw": raw.decode("latin-1"), "stdin": sys.stdin.buffer.read().decode()}
    out = os.path.join(sys.argv[1], f"{os.getpid()}.json")
    with open(out + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(out + ".tmp", out)
"""
FAIL_TIMES = """
    import os, sys
    # Appends one line per attempt; fails (exit 3) for the first N attempts, N = argv[2].
    with open(sys.argv[1], "a") as f:
        f.write("run\\n")
    with open(sys.argv[1]) as f:
        attempts = len(f.readlines())
    sys.exit(3 if attempts <= int(sys.argv[2]) else 0)
"""
HANG_WITH_CHILD = """
    import os, signal, subprocess, sys, time
    # A child that ignores SIGTERM (only SIGKILL ends it), in the hook's process group.
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(600)
"""
CONCURRENT = """
    import os, sys, time
    active, release, seen = sys.argv[1:4]
    mine = os.path.join(active, str(os.getpid()))
    open(mine, "w").close()
    with open(os.path.join(seen, str(os.getpid())), "w") as f:
        f.write(str(len(os.listdir(active))))
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # still running while the next ones start, if the bound let them
    os.unlink(mine)
"""
CHATTY = """
    import sys
    for i in range(10000):
        sys.stdout.write(f"line {i:05d} of output\\n")  # 21 bytes a line, 210,000 in all: past any pipe buffer
    sys.stderr.write("oops: " + sys.argv[1] + "\\n")
"""


class Logged:
    """A logger of its own, with the agent's filters (control characters escaped, secrets redacted)."""

    def __init__(self, name: str) -> None:
        self.stream = io.StringIO()
        self.logger = logging.getLogger(name)
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        add_filters(self.handler)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    def lines(self, level: str | None = None) -> list[str]:
        self.handler.acquire()
        try:
            text = self.stream.getvalue()
        finally:
            self.handler.release()
        return [line for line in text.splitlines() if level is None or line.startswith(level + " ")]


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[Logged]:
    logged = Logged(f"test.hooks.{request.node.name}")
    yield logged
    logged.logger.removeHandler(logged.handler)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def make_runner(state: Path, logged: Logged) -> Iterator[Callable[..., HookRunner]]:
    runners: list[HookRunner] = []

    def make(hooks: HooksSettings, concurrency: int = 2, **options: Any) -> HookRunner:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("kill_grace", 0.5)
        runner = HookRunner(hooks, state, concurrency, logged.logger, **options)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.stop(timeout=0)


def hook(tmp_path: Path, body: str, *args: str | Path) -> list[str]:
    script = tmp_path / f"hook{len(list(tmp_path.glob('hook*.py')))}.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(script), *map(str, args)]


def recorded(folder: Path, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    def done() -> list[Path] | None:
        runs = sorted(folder.glob("*.json"))
        return runs if len(runs) >= count else None

    return [json.loads(p.read_text()) for p in wait_for(done, timeout, f"{count} hook runs recorded")]


def is_dead(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (an orphan's reaper may be slow or absent in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_all(*pids: int) -> None:
    """Whatever a failed test left running of a hook."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def journal_runs(state: Path) -> int:
    """The runs the journal file holds, read without touching it (`load` would rewrite it, racing the
    runner that appends to it)."""
    return len(Journal(state, RUNS, logging.getLogger("test")).read())


# ---- what a hook is given -------------------------------------------------------------------------


def test_the_environment_is_the_agents_without_the_token_plus_the_events_variables(
    tmp_path: Path, make_runner: Callable[..., HookRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    register_secret(TOKEN)
    monkeypatch.setenv("USEAPI_TOKEN", TOKEN)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/minimax-watcher.service")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("MINIMAX_ERROR", "stale, from whoever started the agent")
    monkeypatch.setenv("COPIED_TOKEN", f"Bearer {TOKEN}")  # the token under another name is still the token
    monkeypatch.setenv("OPERATOR_SETTING", "kept as is")
    runs = tmp_path / "runs"
    runs.mkdir()
    runner = make_runner(HooksSettings(on_upload=hook(tmp_path, RECORD, runs)))
    runner.start()
    assert runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))

    (run,) = recorded(runs)
    dropped = {"USEAPI_TOKEN", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
               "LISTEN_FDS", "MINIMAX_ERROR", "COPIED_TOKEN"}  # fmt: skip
    expected = {k: v for k, v in os.environ.items() if k not in dropped} | {
        "MINIMAX_EVENT": "upload",
        "MINIMAX_FILE": IMAGE,
        "MINIMAX_SIDECAR": IMAGE + ".json",
        "MINIMAX_FILE_ID": SIDECAR["fileID"],
        "MINIMAX_OSS_PATH": SIDECAR["ossPath"],
        "MINIMAX_ACCOUNT": "111111",
        "MINIMAX_SHA256": SIDECAR["sha256"],
        "MINIMAX_CONTENT_TYPE": "image/png",
        "MINIMAX_FOLDER": FOLDER.path,
    }
    assert run["env"] == expected
    assert run["env"]["OPERATOR_SETTING"] == "kept as is"
    assert json.loads(run["stdin"]) == SIDECAR
    assert "testtokenDONOTLEAK" not in run["raw"]


def test_a_failure_gets_its_error_record_and_the_folders_account(
    tmp_path: Path, make_runner: Callable[..., HookRunner]
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    runner = make_runner(HooksSettings(on_failure=hook(tmp_path, RECORD, runs)))
    runner.start()
    assert not runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))  # no on_upload configured
    assert runner.submit(HookEvent.for_failure(IMAGE, FOLDER, ERROR_RECORD))

    (run,) = recorded(runs)
    assert {
        k: v
        for k, v in run["env"].items()
        if k.startswith("MINIMAX_") and not k.startswith("MINIMAX_WATCHER_")
    } == {
        "MINIMAX_EVENT": "failure",
        "MINIMAX_FILE": IMAGE,
        "MINIMAX_ERROR_RECORD": IMAGE + ".error.json",
        "MINIMAX_ACCOUNT": "111111",
        "MINIMAX_FOLDER": FOLDER.path,
        "MINIMAX_ERROR": "the API refused it: bad image",
        "MINIMAX_CODE": "400",
    }
    assert json.loads(run["stdin"]) == ERROR_RECORD


def test_an_attention_event_says_what_happened_and_where(
    tmp_path: Path, make_runner: Callable[..., HookRunner]
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    runner = make_runner(HooksSettings(on_attention=hook(tmp_path, RECORD, runs)))
    runner.start()
    message = "account 111111 paused: 402 subscription expired; renew it on useapi.net"
    runner.submit(HookEvent.for_attention(message, account="111111"))
    runner.submit(HookEvent.for_attention("cannot write in /srv/drop/alice: read-only", folder=FOLDER))

    by_message = {run["env"]["MINIMAX_MESSAGE"]: run for run in recorded(runs, 2)}
    paused = by_message[message]
    assert {
        k: v
        for k, v in paused["env"].items()
        if k.startswith("MINIMAX_") and not k.startswith("MINIMAX_WATCHER_")
    } == {
        "MINIMAX_EVENT": "attention",
        "MINIMAX_MESSAGE": message,
        "MINIMAX_ACCOUNT": "111111",
    }
    document = json.loads(paused["stdin"])
    assert document.pop("at").endswith("Z")
    assert document == {"event": "attention", "message": message, "account": "111111"}
    unwritable = by_message["cannot write in /srv/drop/alice: read-only"]
    assert unwritable["env"]["MINIMAX_FOLDER"] == FOLDER.path and "MINIMAX_ACCOUNT" not in unwritable["env"]
    assert json.loads(unwritable["stdin"])["folder"] == FOLDER.path


# ---- failing, hanging -----------------------------------------------------------------------------


def test_a_failing_hook_is_retried_then_given_up_with_one_error_line(
    tmp_path: Path, state: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    attempts = tmp_path / "attempts"
    results: list[tuple[str, bool]] = []
    runner = make_runner(
        HooksSettings(on_upload=hook(tmp_path, FAIL_TIMES, attempts, 99)),
        on_result=lambda hook, ok: results.append((hook, ok)),
    )
    runner.start()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))

    wait_for(lambda: logged.lines("ERROR"), 30, "the hook to be given up")
    wait_for(lambda: runner.pending == 0, 5, "the run to leave the journal")
    assert attempts.read_text().count("run") == 5
    assert results == [("on_upload", False)] * 5
    (error,) = logged.lines("ERROR")
    assert error == f"ERROR hook on_upload for {IMAGE}: exited with status 3; gave up after 5 attempts"
    retries = logged.lines("WARNING")
    assert len(retries) == 4 and "(attempt 4 of 5); trying again in" in retries[-1]
    assert journal_runs(state) == 0


def test_a_hook_that_fails_twice_then_succeeds_is_done(
    tmp_path: Path, state: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    attempts = tmp_path / "attempts"
    results: list[bool] = []
    runner = make_runner(
        HooksSettings(on_upload=hook(tmp_path, FAIL_TIMES, attempts, 2)),
        on_result=lambda hook, ok: results.append(ok),
    )
    runner.start()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))

    wait_for(lambda: runner.pending == 0, 30, "the run to finish")
    assert results == [False, False, True]
    assert attempts.read_text().count("run") == 3
    assert not logged.lines("ERROR")
    assert journal_runs(state) == 0


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polled"])
def test_a_hanging_hook_and_the_child_it_started_are_killed_at_the_timeout(
    tmp_path: Path, make_runner: Callable[..., HookRunner], logged: Logged, monkeypatch: pytest.MonkeyPatch,
    pidfd: bool,
) -> None:  # fmt: skip
    if not pidfd:  # as on kernels before 5.3, or under a seccomp filter that refuses pidfd_open
        monkeypatch.setattr(hook_process, "_pidfd", lambda pid: None)
    pids_file = tmp_path / "pids"
    runner = make_runner(
        HooksSettings(on_upload=hook(tmp_path, HANG_WITH_CHILD, pids_file), timeout_seconds=1.5),
        max_attempts=1,
    )
    runner.start()
    submitted = time.monotonic()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    leader, child = map(
        int, wait_for(lambda: pids_file.exists() and pids_file.read_text(), 15, "pids").split()
    )
    try:
        wait_for(lambda: logged.lines("ERROR"), 15, "the hook to be killed and given up")
        elapsed = time.monotonic() - submitted
        (error,) = logged.lines("ERROR")
        assert "ran past its 1.5 s timeout and was killed; gave up after 1 attempts" in error
        # The child ignores SIGTERM: it is dead only because the whole group got SIGKILL after the grace.
        wait_for(lambda: is_dead(leader) and is_dead(child), 5, "the hook and its child to be dead")
        assert elapsed < 1.5 + 0.5 + 3.0, elapsed
    finally:
        kill_all(leader, child)


def test_a_hook_that_exits_is_done_even_if_a_child_it_left_holds_its_output(
    tmp_path: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    pid_file = tmp_path / "pid"
    background = """
        import subprocess, sys
        # Inherits stdout and stderr, and outlives the hook: a job started on purpose.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(sys.argv[1], "w").write(str(child.pid))
        print("started the job")
    """
    results: list[bool] = []
    runner = make_runner(
        HooksSettings(on_upload=hook(tmp_path, background, pid_file), timeout_seconds=30),
        on_result=lambda hook, ok: results.append(ok),
    )
    runner.start()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    try:
        wait_for(lambda: runner.pending == 0, 10, "the run to end when the hook exits, not at its timeout")
        assert results == [True]
        assert f"INFO hook on_upload for {IMAGE}: stdout: started the job" in logged.lines()
        assert not is_dead(int(pid_file.read_text()))  # not the hook's to kill once it has exited
    finally:
        kill_all(int(pid_file.read_text()))


def test_a_program_that_cannot_be_started_counts_as_a_failed_run(
    tmp_path: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    program = tmp_path / "gone"  # checked at config time, removed since
    results: list[bool] = []
    runner = make_runner(
        HooksSettings(on_upload=[str(program)]), max_attempts=2, on_result=lambda hook, ok: results.append(ok)
    )
    runner.start()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    wait_for(lambda: logged.lines("ERROR"), 15, "the run to be given up")
    assert (
        "could not be started: No such file or directory; gave up after 2 attempts"
        in logged.lines("ERROR")[0]
    )
    assert results == [False, False]


# ---- off the caller's path, bounded ---------------------------------------------------------------


def test_at_most_concurrency_hooks_run_at_once(
    tmp_path: Path, make_runner: Callable[..., HookRunner]
) -> None:
    active, seen, release = tmp_path / "active", tmp_path / "seen", tmp_path / "release"
    active.mkdir()
    seen.mkdir()
    runner = make_runner(
        HooksSettings(on_upload=hook(tmp_path, CONCURRENT, active, release, seen)), concurrency=2
    )
    runner.start()
    for i in range(6):
        runner.submit(HookEvent.for_upload(f"/srv/drop/alice/{i}.png", FOLDER, SIDECAR))
    wait_for(lambda: len(list(seen.iterdir())) >= 2, 15, "two hooks running")
    release.touch()
    wait_for(lambda: runner.pending == 0, 30, "all six runs done")
    counts = [int(p.read_text()) for p in seen.iterdir()]
    assert len(counts) == 6
    assert max(counts) == 2, counts


def test_a_hanging_hook_never_delays_submit(tmp_path: Path, make_runner: Callable[..., HookRunner]) -> None:
    pids_file = tmp_path / "pids"
    runner = make_runner(HooksSettings(on_upload=hook(tmp_path, HANG_WITH_CHILD, pids_file)), concurrency=1)
    runner.start()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    wait_for(pids_file.exists, 15, "the hook to be running")
    for i in range(20):
        began = time.monotonic()
        runner.submit(HookEvent.for_upload(f"/srv/drop/alice/{i}.png", FOLDER, SIDECAR))
        assert time.monotonic() - began < 2.0
    assert runner.pending == 21
    leader, child = map(int, pids_file.read_text().split())
    try:
        runner.stop(timeout=0)  # kills the hanging hook, group and all
        wait_for(lambda: is_dead(leader) and is_dead(child), 10, "the hook to be killed at stop")
    finally:
        kill_all(leader, child)


def test_output_goes_to_the_log_tagged_bounded_and_redacted(
    tmp_path: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    secret = "user:4242-printedBYtheHOOK"
    register_secret(secret)
    runner = make_runner(HooksSettings(on_upload=hook(tmp_path, CHATTY, secret)))
    runner.start()
    runner.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    wait_for(lambda: runner.pending == 0, 15, "the run to finish")

    tag = f"INFO hook on_upload for {IMAGE}: "
    stdout = [
        line.removeprefix(tag + "stdout: ") for line in logged.lines() if line.startswith(tag + "stdout: ")
    ]
    assert stdout[0] == "line 00000 of output"
    shown = 4096 // 21  # whole lines within the first 4 KiB; the next one cut
    assert stdout[shown - 1] == f"line {shown - 1:05d} of output"
    assert stdout[-1] == f"... {210_000 - 4096} more bytes not shown"
    assert sum(len(line) + 1 for line in stdout[:-1]) <= 4096 + 1
    assert logged.lines().count(f"{tag}stderr: oops: <redacted>") == 1
    assert secret not in "\n".join(logged.lines())
    assert any(line.startswith(f"{tag}done in ") for line in logged.lines())


# ---- at least once ----------------------------------------------------------------------------------

DRIVER = """
    import json, logging, sys, time
    from pathlib import Path
    from watcher.config.load import HooksSettings
    from watcher.core.folders import Folder
    from watcher.hooks.runner import HookEvent, HookRunner

    state, marker, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "start"
    hooks = HooksSettings(on_upload=json.loads(sys.argv[4]))
    runner = HookRunner(hooks, state, 1, logging.getLogger("driver"))
    folder = Folder(path="/srv/drop/alice", account="111111", recursive=False, polling=False)
    runner.submit(HookEvent.for_upload("/srv/drop/alice/cat.png", folder, json.loads(sys.argv[5])))
    marker.touch()  # submit has returned: the run must survive whatever happens now
    if start:
        runner.start()
    time.sleep(600)
"""


@pytest.mark.parametrize("when", ["before its turn", "while it runs"])
def test_a_run_pending_at_kill_9_runs_after_a_restart(
    tmp_path: Path, state: Path, make_runner: Callable[..., HookRunner], when: str
) -> None:
    pids_file, submitted = tmp_path / "pids", tmp_path / "submitted"
    hanging = hook(tmp_path, HANG_WITH_CHILD, pids_file)
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER), encoding="utf-8")
    start = "start" if when == "while it runs" else "no-start"
    args = [
        sys.executable,
        str(driver),
        str(state),
        str(submitted),
        start,
        json.dumps(hanging),
        json.dumps(SIDECAR),
    ]
    process = subprocess.Popen(args)
    try:
        wait_for(submitted.exists, 30, "the driver to submit")
        if when == "while it runs":
            wait_for(pids_file.exists, 15, "the hook to be running")
    finally:
        process.kill()  # SIGKILL: no stop(), no cleanup
        process.wait()
    if pids_file.exists():  # the hook outlives the agent's kill -9 (its own session); end it
        leader = int(pids_file.read_text().split()[0])
        os.killpg(leader, signal.SIGKILL)

    runs = tmp_path / "runs"
    runs.mkdir()
    runner = make_runner(HooksSettings(on_upload=hook(tmp_path, RECORD, runs)))
    assert journal_runs(state) == 1
    runner.start()
    (run,) = recorded(runs)
    assert run["env"]["MINIMAX_FILE"] == "/srv/drop/alice/cat.png"
    assert json.loads(run["stdin"]) == SIDECAR
    # `pending` drops before the journal line that says so is on disk: wait for the journal itself.
    wait_for(lambda: runner.pending == 0 and journal_runs(state) == 0, 10, "the replayed run to finish")


def test_a_stopped_run_stays_pending_and_its_failures_still_count(
    tmp_path: Path, state: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    attempts = tmp_path / "attempts"
    failing = make_runner(
        HooksSettings(on_upload=hook(tmp_path, FAIL_TIMES, attempts, 99)), retry=RetryPolicy(base=60)
    )
    failing.start()
    failing.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    wait_for(lambda: logged.lines("WARNING"), 15, "a first failed attempt")
    failing.stop(timeout=0)  # the retry is a minute away: still pending

    again = make_runner(HooksSettings(on_upload=hook(tmp_path, FAIL_TIMES, attempts, 99)))
    again.start()
    wait_for(lambda: logged.lines("ERROR"), 30, "the run to be given up")
    # 5 attempts in all, across the restart: the journal kept the count.
    assert attempts.read_text().count("run") == 5
    assert "gave up after 5 attempts" in logged.lines("ERROR")[0]


def test_a_torn_journal_line_is_skipped(
    tmp_path: Path, state: Path, make_runner: Callable[..., HookRunner]
) -> None:
    first = make_runner(HooksSettings(on_upload=[sys.executable, "-c", "pass"]))
    first.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))  # never started: pending
    with (state / RUNS.file).open("ab") as f:
        f.write(b'{"add":"0123","event":{"event":"upl')
    runs = tmp_path / "runs"
    runs.mkdir()
    runner = make_runner(HooksSettings(on_upload=hook(tmp_path, RECORD, runs)))
    runner.start()
    (run,) = recorded(runs)
    assert run["env"]["MINIMAX_FILE"] == IMAGE
    wait_for(lambda: runner.pending == 0, 10, "the run to finish")


def test_a_run_of_a_hook_no_longer_configured_is_dropped(
    tmp_path: Path, state: Path, make_runner: Callable[..., HookRunner], logged: Logged
) -> None:
    first = make_runner(HooksSettings(on_upload=[sys.executable, "-c", "pass"]))
    first.submit(HookEvent.for_upload(IMAGE, FOLDER, SIDECAR))
    runner = make_runner(HooksSettings())
    runner.start()
    wait_for(lambda: runner.pending == 0, 10, "the run to be dropped")
    assert any("no longer configured; the run is dropped" in line for line in logged.lines("INFO"))
    assert journal_runs(state) == 0


def test_a_state_folder_that_cannot_be_looked_into_costs_the_journal_not_the_runner(tmp_path: Path) -> None:
    """As the service user with a HOME it cannot enter: a warning, then hooks still run (in memory)."""
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to make a folder this process cannot look into")
    locked = tmp_path / "locked"
    (locked / "state").mkdir(parents=True)
    locked.chmod(0o000)
    code = (
        "import sys, pathlib; from watcher.hooks.runner import HookRunner; from watcher.config.load import HooksSettings; "
        f"r = HookRunner(HooksSettings(), pathlib.Path({str(locked / 'state')!r}), 1); r.start(); r.stop(1); print('ok')"
    )
    try:
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
            capture_output=True, text=True, timeout=30, cwd="/",
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )  # fmt: skip
    finally:
        locked.chmod(0o755)
    if "No module named" in result.stderr:
        import pytest

        pytest.skip("uid 65534 cannot reach this interpreter or checkout (tests/helpers/other_user.py does)")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
