"""The sd_notify protocol against real datagram sockets: what systemd receives, byte for byte, at a path
or an abstract name; nothing at all outside systemd; and never an error for the agent."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.report.sd_notify import Notifier


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder whose socket paths fit in sun_path (108 bytes), which tmp_path's may not."""
    folder = Path(tempfile.mkdtemp(prefix="mmw-", dir="/tmp"))
    yield folder
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()


def listening(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_each_message_is_one_datagram_to_a_path_socket(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    with listening(path) as systemd:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        notifier.ready("watching 2 folders")
        notifier.status("uploading a.png")
        notifier.still_starting(90)
        notifier.stopping()
        notifier.watchdog()
        notifier.close()
        got = [systemd.recv(4096) for _ in range(5)]
    assert got == [
        b"READY=1\nSTATUS=watching 2 folders",
        b"STATUS=uploading a.png",
        b"EXTEND_TIMEOUT_USEC=90000000",
        b"STOPPING=1",
        b"WATCHDOG=1",
    ]


def test_a_leading_at_names_an_abstract_socket() -> None:
    name = f"mmw-notify-test-{secrets.token_hex(4)}"
    with listening(b"\0" + name.encode()) as systemd:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.status("hello")
        notifier.close()
        assert systemd.recv(4096) == b"STATUS=hello"


def test_reloading_carries_the_monotonic_clock_in_microseconds(short_dir: Path) -> None:
    path = str(short_dir / "notify")
    with listening(path) as systemd:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.close()
        reloading, monotonic = systemd.recv(4096).decode().split("\n")
    assert reloading == "RELOADING=1"
    name, value = monotonic.split("=")
    assert name == "MONOTONIC_USEC" and before <= int(value) <= after


@pytest.mark.parametrize("address", ["", "relative/notify", "vsock:2:1234"])
def test_without_a_usable_notify_socket_every_call_does_nothing(address: str) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": address} if address else {})
    notifier.ready("x")
    notifier.stopping()
    assert notifier._socket is None, "not even a socket is opened"
    notifier.close()


def test_a_socket_nobody_listens_on_never_raises(short_dir: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(short_dir / "gone")})
    notifier.ready("x")
    notifier.watchdog()
    notifier.close()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_is_pinged_at_half_its_deadline_when_it_is_this_process(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier(env).watchdog_interval == interval
