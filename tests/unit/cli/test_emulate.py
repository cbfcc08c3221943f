"""`--emulate`'s emulator: on its port when free, on another when taken, and one line that says where."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from watcher.cli import emulate
from watcher.cli.emulate import start_emulator, start_on


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_port_asked_for_when_it_is_free() -> None:
    port = free_port()
    emulator = start_on(port, "user:1-t", ["123456"])
    try:
        assert emulator.port == port
    finally:
        emulator.stop()


def test_another_port_when_it_is_taken_and_the_line_says_so(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(emulate, "EMULATOR_PORT", taken_port)
    caplog.set_level(logging.INFO, "watcher")

    emulator, token = start_emulator([None, "222", "111", "222"], None)
    try:
        assert emulator.port != taken_port and token.source == "emulator"
        [line] = [r.getMessage() for r in caplog.records if "emulating the API" in r.getMessage()]
        assert line.startswith(f"port {taken_port} is taken, so emulating the API at {emulator.origin} ")
        assert "(accounts 111, 222; " in line
        assert f"curl {emulator.origin}/_emulator/requests" in line
        assert requests.get(f"{emulator.origin}/_emulator/requests", timeout=10).json() == []
    finally:
        emulator.stop()


def test_the_line_names_the_usual_port_plainly_when_it_was_free(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    monkeypatch.setattr(emulate, "EMULATOR_PORT", port)
    caplog.set_level(logging.INFO, "watcher")
    emulator, _ = start_emulator([], None)
    try:
        [line] = [r.getMessage() for r in caplog.records if "emulating the API" in r.getMessage()]
        assert line.startswith(f"emulating the API at http://127.0.0.1:{port} (accounts 123456; ")
    finally:
        emulator.stop()


def test_emulate_on_a_taken_port_says_so_in_one_line(taken_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "emulate", "--port", str(taken_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"emulate: cannot listen on 127.0.0.1:{taken_port} (Address already in use): choose another" in (
        result.stderr
    )
