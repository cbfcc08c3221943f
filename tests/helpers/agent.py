"""`minimax-watcher run` as a real process, with a config written for the test and a fake NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import TOKEN, wait_for
from tests.helpers.notify import NotifySocket


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
        self,
        *,
        wait_ready: bool = True,
        args: tuple[str, ...] = (),
        token: str | None = TOKEN,
        extra_env: dict[str, str] | None = None,
    ) -> AgentProcess:
        self._close_notify()  # of a run before, which the test killed and reaped itself
        self.notify = NotifySocket(abstract=False)
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.address, PYTHONUNBUFFERED="1", **(extra_env or {}))
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
            self._close_notify()  # a run the test killed and reaped itself
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
        self._close_notify()
        return code

    def _close_notify(self) -> None:
        if self.notify is not None:
            self.notify.close()
            self.notify = None
