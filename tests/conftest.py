"""Shared harness: the real emulator on loopback and the real agent as a subprocess.

Nothing is mocked: the agent is `python -m watcher run`, watching real folders with inotify,
uploading over real sockets to the emulator running in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.emulator import Emulator

TOKEN = "user:4242-testtokenDONOTLEAK"
ACCOUNT_A = "111111"
ACCOUNT_B = "222222"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def sidecar_of(image: Path) -> Path:
    return image.with_name(image.name + ".json")


def error_record_of(image: Path) -> Path:
    return image.with_name(image.name + ".error.json")


def wait_sidecar(image: Path, timeout: float = 15.0, *, differs_from: str | None = None) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        data = read_json(sidecar_of(image))
        if data is not None and differs_from is not None and data.get("sha256") == differs_from:
            return None
        return data

    return wait_for(ready, timeout, f"sidecar of {image.name}")  # type: ignore[no-any-return]


class AgentProcess:
    """`minimax-watcher run` in a subprocess with a config written for the test."""

    def __init__(self, workdir: Path, base_url: str, folders: list[dict[str, Any]], **settings: Any) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "agent.log"
        config: dict[str, Any] = {"api": {"base_url": base_url}, "settle_seconds": 1.0, "concurrency": 4}
        config.update(settings)
        config["folders"] = folders
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: Any = None  # a tests.notify.NotifySocket while running

    def start(
        self, *, wait_ready: bool = True, args: tuple[str, ...] = (), token: str | None = TOKEN
    ) -> AgentProcess:
        from tests.notify import NotifySocket  # it uses wait_for from this module

        self.notify = NotifySocket(abstract=False)
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.address, PYTHONUNBUFFERED="1")
        env["XDG_STATE_HOME"] = str(self.workdir / "state")
        # A refused sidecar is retried every second, not every 15 s: tests wait on it.
        env.setdefault("MINIMAX_WATCHER_TIMINGS", "sidecar_retry=1,root_recheck=0.5")
        env.pop("JOURNAL_STREAM", None)
        env.pop("USEAPI_TOKEN", None)
        if token is not None:
            env["USEAPI_TOKEN"] = token
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(self.config_path), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.notify is not None and self.proc is not None

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            return self.notify is not None and self.notify.seen("READY=1")

        wait_for(ready, timeout, "READY=1 from the agent")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"agent did not stop within {timeout} s of SIGTERM:\n{self.log()}"
                ) from None
        code = self.proc.returncode
        self.proc = None
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        return code


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B]) as emu:
        yield emu


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def start_agent(tmp_path: Path, emulator: Emulator) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def start(folders: list[dict[str, Any]], *, wait_ready: bool = True, **settings: Any) -> AgentProcess:
        agent = AgentProcess(tmp_path, emulator.base_url, folders, **settings)
        agents.append(agent)
        return agent.start(wait_ready=wait_ready)

    yield start
    for agent in agents:
        code = agent.stop()
        assert code == 0, f"agent exited with {code}:\n{agent.log()}"
    assert_token_never_written(tmp_path)


def assert_token_never_written(root: Path) -> None:
    """No log, sidecar, error record or any other file the agent left may contain the token."""
    needle = TOKEN.encode()
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20:
                with path.open("rb") as f:
                    assert needle not in f.read(), f"the token leaked into {path}"


# The unit tests' single-account `emu` and `client` fixtures (tests/unit_fixtures.py).
pytest_plugins = ["tests.unit_fixtures"]
