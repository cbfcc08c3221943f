"""sd_notify and journald logging, seen from outside a real `python -m watcher run` process.

A fake $NOTIFY_SOCKET (a path, or an abstract `@name`) records every datagram the agent sends, the way
systemd would receive them; the agent uploads to the real emulator. The journald half gives the agent a
stderr file and a JOURNAL_STREAM that does or does not name that file. The real systemd is in
test_systemd_service.py.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, TOKEN, sidecar_of, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from tests.helpers.notify import NotifySocket
from watcher.emulator import Emulator, Fault

WATCHDOG_USEC = 400_000  # the agent pings every 0.2 s
KNOWN_FIELDS = {
    "READY",
    "STATUS",
    "WATCHDOG",
    "RELOADING",
    "MONOTONIC_USEC",
    "STOPPING",
    "EXTEND_TIMEOUT_USEC",
}
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
ANY_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


class Agent:
    """`python -m watcher run` with stderr to a file and the environment systemd would give it."""

    def __init__(self, tmp: Path, emulator: Emulator, env: dict[str, str], shell_prefix: str = "") -> None:
        self.drop = tmp / "drop"
        self.drop.mkdir(exist_ok=True)
        self.config = tmp / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "api": {"base_url": emulator.base_url},
                    "settle_seconds": 0.5,
                    "folders": [{"path": str(self.drop), "account": ACCOUNT_A}],
                }
            )
        )
        self.stderr_path = tmp / "stderr.log"
        full_env = dict(os.environ, USEAPI_TOKEN=TOKEN, STATE_DIRECTORY=str(tmp / "state"), **env)
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "XDG_STATE_HOME"):
            if key not in env:
                full_env.pop(key, None)
        argv = [sys.executable, "-m", "watcher", "run", "--config", str(self.config)]
        if shell_prefix:
            # `exec` keeps the shell's pid, so the shell can name the agent's own pid before it starts.
            argv = ["sh", "-c", f'{shell_prefix} exec "$@"', "sh", *argv]
        with self.stderr_path.open("wb") as stderr:
            self.stderr_stat = os.fstat(stderr.fileno())
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=full_env, cwd=tmp
            )

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the agent ignored SIGTERM:\n{self.log()}") from None
        assert TOKEN not in self.log(), "the token leaked into the log"
        return self.proc.returncode


@pytest.fixture
def notify_socket(request: pytest.FixtureRequest) -> Iterator[NotifySocket]:
    listener = NotifySocket(abstract=getattr(request, "param", "path") == "abstract")
    yield listener
    listener.close()


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.stop()


# ---- sd_notify ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("notify_socket", ["path", "abstract"], indirect=True)
def test_notify_lifecycle_ready_status_watchdog_reload_stopping(
    tmp_path: Path, emulator: Emulator, notify_socket: NotifySocket, agents: list[Agent]
) -> None:
    agent = Agent(
        tmp_path,
        emulator,
        {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
    )
    agents.append(agent)

    # READY=1 comes once the folder is watched, with the first STATUS= in the same datagram.
    ready = notify_socket.wait("READY", "1")
    assert ready.fields.get("STATUS", "").startswith("1 folder watched"), ready
    assert f"watching {agent.drop}" in agent.log()

    # WATCHDOG=1 at half of WATCHDOG_USEC: several per deadline, never a deadline without one.
    first = len(notify_socket.snapshot())
    notify_socket.wait("WATCHDOG", "1", after=first)
    wait_for(lambda: len(notify_socket.with_field("WATCHDOG")) >= 6, 10, "six watchdog pings")
    pings = [d.at for d in notify_socket.with_field("WATCHDOG", "1")]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 0.1 <= statistics.median(gaps) <= 0.3, gaps

    # STATUS= follows the work: an upload shows up in it.
    image = agent.drop / "cat.png"
    image.write_bytes(png_bytes(1))
    wait_sidecar(image)
    wait_for(
        lambda: any(
            "1 uploaded since start" in d.fields["STATUS"] for d in notify_socket.with_field("STATUS")
        ),
        10,
        "STATUS= to count the upload",
    )

    # SIGHUP: RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, shared by all processes), then READY=1.
    before_reload = len(notify_socket.snapshot())
    sent_at_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    agent.proc.send_signal(signal.SIGHUP)
    reloading = notify_socket.wait("RELOADING", "1", after=before_reload)
    monotonic_usec = int(reloading.fields["MONOTONIC_USEC"])
    now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sent_at_usec <= monotonic_usec <= now_usec, (sent_at_usec, monotonic_usec, now_usec)
    index = notify_socket.snapshot().index(reloading)
    notify_socket.wait("READY", "1", after=index + 1)

    # SIGTERM: STOPPING=1, then a clean exit.
    before_stop = len(notify_socket.snapshot())
    assert agent.stop() == 0
    stopping = notify_socket.wait("STOPPING", "1", after=before_stop, timeout=5)
    assert stopping.fields == {"STOPPING": "1"}

    assert not notify_socket.malformed, notify_socket.malformed
    for datagram in notify_socket.snapshot():
        assert set(datagram.fields) <= KNOWN_FIELDS, datagram


def test_a_start_up_scan_in_progress_asks_systemd_for_more_start_time_before_ready(
    tmp_path: Path, emulator: Emulator, notify_socket: NotifySocket, agents: list[Agent]
) -> None:
    # Every directory listed counts as progress here (in service: every 10 s of scanning).
    env = {"NOTIFY_SOCKET": notify_socket.address, "MINIMAX_WATCHER_TIMINGS": "start_progress=0"}
    agent = Agent(tmp_path, emulator, env)
    agents.append(agent)

    ready = notify_socket.wait("READY", "1")
    datagrams = notify_socket.snapshot()
    before_ready = datagrams[: datagrams.index(ready)]
    extensions = [d.fields["EXTEND_TIMEOUT_USEC"] for d in before_ready if "EXTEND_TIMEOUT_USEC" in d.fields]
    assert extensions and all(int(value) == 60_000_000 for value in extensions), datagrams


@pytest.mark.parametrize(
    ("shell_prefix", "pings"),
    [
        pytest.param("export WATCHDOG_PID=$$;", True, id="WATCHDOG_PID-is-the-agent"),
        pytest.param("export WATCHDOG_PID=1;", False, id="WATCHDOG_PID-is-another-process"),
    ],
)
def test_watchdog_only_for_the_process_it_names(
    tmp_path: Path,
    emulator: Emulator,
    notify_socket: NotifySocket,
    agents: list[Agent],
    shell_prefix: str,
    pings: bool,
) -> None:
    agent = Agent(
        tmp_path,
        emulator,
        {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
        shell_prefix=shell_prefix,
    )
    agents.append(agent)
    ready = notify_socket.wait("READY", "1")
    if pings:
        notify_socket.wait("WATCHDOG", "1", timeout=5)
    else:
        # Five ping intervals after READY=1 without a single WATCHDOG=1.
        while time.monotonic() < ready.at + 1.0:
            time.sleep(0.05)
        assert not notify_socket.with_field("WATCHDOG"), notify_socket.snapshot()
        assert agent.proc.poll() is None


def test_status_shows_an_upload_in_flight_without_a_watchdog(
    tmp_path: Path, emulator: Emulator, notify_socket: NotifySocket, agents: list[Agent]
) -> None:
    agent = Agent(tmp_path, emulator, {"NOTIFY_SOCKET": notify_socket.address})
    agents.append(agent)
    notify_socket.wait("READY", "1")
    emulator.add_fault(Fault(kind="slow", delay=8.0))
    image = agent.drop / "slow.png"
    image.write_bytes(png_bytes(2))
    emulator.wait_for_held(1, timeout=15)
    # STATUS= is rate-limited to one per 2 s: within 4 s of the upload starting it must say so.
    wait_for(
        lambda: any(" 1 uploading" in d.fields["STATUS"] for d in notify_socket.with_field("STATUS")),
        4,
        "STATUS= to show the upload in flight",
    )
    assert not sidecar_of(image).exists(), "the upload should still be held by the emulator"


# ---- journald-style logging -----------------------------------------------------------------------------


def _drop_a_good_and_a_bad_image(agent: Agent) -> None:
    good, bad = agent.drop / "good.png", agent.drop / "bad.png"
    good.write_bytes(png_bytes(3))
    bad.write_bytes(b"not an image at all\n")
    wait_sidecar(good)
    wait_for(lambda: "bad.png" in agent.log(), 15, "the error line about bad.png")


def test_under_journald_lines_carry_priorities_and_no_timestamps(
    tmp_path: Path, emulator: Emulator, agents: list[Agent]
) -> None:
    # systemd sets JOURNAL_STREAM to the device and inode of the stream it connected to stderr.
    stderr_path = tmp_path / "stderr.log"
    stderr_path.touch()
    st = stderr_path.stat()
    agent = Agent(tmp_path, emulator, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    agents.append(agent)
    assert (agent.stderr_stat.st_dev, agent.stderr_stat.st_ino) == (st.st_dev, st.st_ino)
    wait_for(lambda: f"watching {agent.drop}" in agent.log(), 20, "the agent to watch its folder")
    _drop_a_good_and_a_bad_image(agent)
    assert agent.stop() == 0
    lines = [line for line in agent.log().splitlines() if line]
    assert lines, "the agent logged nothing"
    for line in lines:
        assert re.match(r"<[0-7]>\S", line), f"no priority prefix: {line!r}"
        assert not ANY_TIMESTAMP.search(line), f"a timestamp under journald: {line!r}"
    assert any(line.startswith(f"<6>watching {agent.drop}") for line in lines), lines
    errors = [line for line in lines if line.startswith("<3>")]
    assert errors and all("bad.png" in line for line in errors), errors


@pytest.mark.parametrize("journal_stream", ["another-file", "unset"])
def test_outside_journald_lines_are_timestamped(
    tmp_path: Path, emulator: Emulator, agents: list[Agent], journal_stream: str
) -> None:
    env = {}
    if journal_stream == "another-file":
        # What a child of a journald-logged service inherits after redirecting its own stderr.
        other = tmp_path / "other.log"
        other.touch()
        env["JOURNAL_STREAM"] = f"{other.stat().st_dev}:{other.stat().st_ino}"
    agent = Agent(tmp_path, emulator, env)
    agents.append(agent)
    wait_for(lambda: f"watching {agent.drop}" in agent.log(), 20, "the agent to watch its folder")
    _drop_a_good_and_a_bad_image(agent)
    assert agent.stop() == 0
    lines = [line for line in agent.log().splitlines() if line]
    for line in lines:
        assert TIMESTAMPED.match(line), f"not an ordinary timestamped line: {line!r}"
        assert not re.match(r"<\d>", line), line
    assert any(" ERROR " in line and "bad.png" in line for line in lines), lines
    assert any(" INFO " in line and f"watching {agent.drop}" in line for line in lines), lines
