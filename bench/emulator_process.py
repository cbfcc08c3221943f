"""bench/emu.py started and driven from the suite: one emulator process for the whole run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from constants import ACCOUNT, BENCH, REPO, TOKEN


class EmulatorProcess:
    """bench/emu.py: the project's emulator in a process of its own, shared by agent and baselines."""

    def __init__(self, work: Path) -> None:
        self.log_path = work / "emulator.log"
        env = dict(os.environ, USEAPI_TOKEN=TOKEN, BENCH_ACCOUNTS=ACCOUNT)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(BENCH / "emu.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start:\n{self.log_path.read_text()}")
        self.base_url: str = json.loads(line)["base_url"]
        self.pid = self.proc.pid

    def command(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
