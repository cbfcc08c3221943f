"""The agent under test: the real `python -m watcher run` process, with a fake $NOTIFY_SOCKET."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .constants import TOKEN
from .context import Context
from .emulator import EmulatorProcess
from .procfs import proc_cpu_seconds, proc_runtime_ns, proc_status_kb, proc_threads, wait_or_kill

QUIET_SHARE = 0.05  # of one core: below this for a second, the agent is idle


class NotifyListener:
    """A fake $NOTIFY_SOCKET that timestamps READY=1 and keeps the latest STATUS=."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.ready_at: float | None = None
        self.status = ""
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").split("\n"):
                if line == "READY=1" and self.ready_at is None:
                    self.ready_at = now
                elif line.startswith("STATUS="):
                    self.status = line[len("STATUS=") :]

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class AgentProcess:
    """`python -m watcher run` with a config holding only the folders and the emulator's URL.

    Its state folder ($STATE_DIRECTORY: the seal key, and whatever the agent keeps across restarts) is
    its own, inside its work folder, unless `state_dir` names one: a second agent given the same one
    starts as the first one's restart would.
    """

    def __init__(
        self,
        ctx: Context,
        name: str,
        folders: list[Path],
        *,
        state_dir: Path | None = None,
        recursive: bool = False,
        folder_settings: dict[str, Any] | None = None,
        emulator: EmulatorProcess | None = None,
        **settings: Any,
    ) -> None:
        self.dir = ctx.fresh_dir(f"agent-{name}")
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "agent.log"
        self.state_dir = state_dir if state_dir is not None else self.dir / "state"
        # `emulator`: another API than the run's shared one (the video workloads' has two accounts);
        # `folder_settings`: per folder path, its other keys (account, generate).
        api = emulator if emulator is not None else ctx.emulator
        config: dict[str, Any] = {"api": {"base_url": api.base_url}}
        config.update(settings)
        extra = folder_settings or {}
        config["folders"] = [
            {"path": str(f), **({"recursive": True} if recursive else {}), **extra.get(str(f), {})}
            for f in folders
        ]
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.agent_src = ctx.agent_src
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifyListener | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 180.0) -> AgentProcess:
        self.notify = NotifyListener(self.dir / "notify")
        env = dict(
            os.environ,
            NOTIFY_SOCKET=self.notify.path,
            USEAPI_TOKEN=TOKEN,
            STATE_DIRECTORY=str(self.state_dir),
        )
        env.pop("JOURNAL_STREAM", None)
        env.pop("WATCHDOG_USEC", None)
        if self.agent_src:  # a scratch copy of the agent to compare against (see --agent-src)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.agent_src, env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while self.notify.ready_at is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no READY=1 from the agent within {timeout:.0f} s")
            time.sleep(0.005)
        return self

    @property
    def ready_seconds(self) -> float:
        assert self.notify is not None and self.notify.ready_at is not None
        return self.notify.ready_at - self.started_at

    def status(self) -> str:
        return self.notify.status if self.notify is not None else ""

    def tracked(self) -> int:
        """Files the agent holds as pending or uploading, from its STATUS= line."""
        found = re.search(r"(\d+) uploading; (\d+) pending", self.status())
        return int(found.group(1)) + int(found.group(2)) if found else 0

    def uploads_logged(self) -> int:
        """Uploads its log reports (one info line each; STATUS= is refreshed every few seconds only)."""
        return len(re.findall(r": uploaded in [0-9.]+ s → ", self.log()))

    def threads(self) -> int:
        return proc_threads(self.pid)

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def hwm_kb(self) -> int:
        return proc_status_kb(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def runtime_ns(self) -> int:
        return proc_runtime_ns(self.pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            wait_or_kill(self.proc, 20)
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if TOKEN in self.log():
            raise RuntimeError("the token appeared in the agent's log")

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_quiet(agent: AgentProcess, timeout: float, share: float = QUIET_SHARE) -> float:
    """Seconds until the agent used less than `share` of a core over a whole second."""
    started = time.monotonic()
    samples = [(started, agent.runtime_ns())]
    while True:
        time.sleep(0.25)
        now = time.monotonic()
        samples.append((now, agent.runtime_ns()))
        past = [s for s in samples if s[0] <= now - 1.0]
        if past:
            t0, ns0 = past[-1]
            if (samples[-1][1] - ns0) / 1e9 < share * (now - t0):
                return t0 - started
        if now - started > timeout:
            return now - started
