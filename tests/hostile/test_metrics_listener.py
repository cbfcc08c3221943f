"""A local user against the metrics listener (issue 21, N7): idle and slowloris connections by the thousand.

prometheus-client's server ran a thread per connection and never timed one out: ~1,000 idle connections
held every descriptor of an agent with the default limit of 1,024, and no upload could open its file.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ACCOUNT_A, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from tests.helpers.limits import agent_descriptor_limit
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile

IDLE = 1100
SLOW = 30
AGENT_LIMIT = 1024
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descriptors_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def scrape(port: int) -> str | None:
    """/metrics as a well-behaved client gets it, or None while the server turns it away."""
    try:
        with _OPENER.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return response.read().decode() if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


@contextlib.contextmanager
def own_descriptors(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"this test needs {needed} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(400)  # three waits of 60 s at most, and the start
def test_idle_and_slow_connections_by_the_thousand(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_descriptor_limit(tmp_path, monkeypatch, AGENT_LIMIT)
    port = free_port()
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}], metrics={"listen": f"127.0.0.1:{port}"})
    assert agent.proc is not None
    pid = agent.proc.pid
    assert wait_for(lambda: scrape(port), 20, "a first scrape")
    fds_before, threads_before = descriptors_of(pid), threads_of(pid)

    attack: list[socket.socket] = []
    with own_descriptors(IDLE + SLOW + 200):
        try:
            # One after another, each sending its first bytes: the kernel delivers them, so each
            # connection reaches the server however slowly it accepts. Idle ones send one byte and no
            # more, slow ones a head they never finish. 60 s at most for the lot.
            opening_ends = time.monotonic() + 60
            slow: dict[socket.socket, bytes] = {}
            for i in range(IDLE + SLOW):
                if time.monotonic() > opening_ends:
                    break
                s = socket.socket()
                attack.append(s)
                s.settimeout(1)
                first = b"G" if i < IDLE else b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                with contextlib.suppress(OSError):  # turned away, or not accepted in time
                    s.connect(("127.0.0.1", port))
                    s.sendall(first)
                if i >= IDLE:
                    s.setblocking(False)
                    slow[s] = b"X"
            peak = {"fds": 0, "threads": 0}

            def trickle_and_measure() -> None:
                for s, byte in slow.items():
                    with contextlib.suppress(OSError):
                        s.send(byte)  # slowloris: a byte at a time, never the end of the head
                peak["fds"] = max(peak["fds"], descriptors_of(pid))
                peak["threads"] = max(peak["threads"], threads_of(pid))

            # Uploads go on while every connection is open.
            image = drop / "during.png"
            image.write_bytes(png_bytes(9801))

            def uploaded() -> bool:
                trickle_and_measure()
                return (drop / "during.png.json").exists()

            wait_for(uploaded, 60, "the sidecar of an image dropped during the attack", interval=0.2)
            wait_sidecar(image)

            # A well-behaved client is answered once the idle and slow ones have run out of time,
            # while the attacker still holds every socket open.
            def answered() -> str | None:
                trickle_and_measure()
                return scrape(port)

            text = wait_for(answered, 60, "/metrics to answer a well-behaved client", interval=0.2)
            assert 'minimax_watcher_uploads_total{account="111111",result="success"} 1.0' in text
            trickle_and_measure()
        finally:
            for s in attack:
                s.close()
    # A listener with a cap holds a bounded number of descriptors and no thread per connection.
    assert peak["fds"] <= fds_before + 16 + 24, (fds_before, peak)
    assert peak["threads"] <= threads_before + 8, (threads_before, peak)
    assert "Traceback" not in agent.log()
