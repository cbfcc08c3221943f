"""The API for the whole run: `watcher.emulator.Emulator` in a process of its own, shared by all.

`EmulatorProcess` starts this module as `python -m harness.emulator` and drives the emulator through
its own control endpoints (`/_emulator/requests`, `/_emulator/faults`), as the tests and users do. The
child differs from `minimax-watcher emulate` in one setting only: it does not sha256 the bodies it
receives (`BENCH_EMULATOR_HASH=1` turns that back on; bench/README.md, "How it measures").
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .constants import ACCOUNT, BENCH, REPO, TOKEN
from .procfs import wait_or_kill

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, whatever $http_proxy


class EmulatorProcess:
    """The emulator's process: its base URL for the agent and baselines, its request log and faults."""

    def __init__(self, work: Path, accounts: Sequence[str] = (ACCOUNT,), name: str = "emulator") -> None:
        self.log_path = work / f"{name}.log"
        self.accounts = tuple(accounts)
        env = dict(os.environ, USEAPI_TOKEN=TOKEN, BENCH_ACCOUNTS=",".join(self.accounts))
        paths = [str(BENCH), str(REPO), env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.emulator"],
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
        started = json.loads(line)
        self.base_url: str = started["base_url"]
        self._control = started["origin"] + "/_emulator/"
        self.pid = self.proc.pid

    def _call(self, method: str, name: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._control + name, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with _NO_PROXY.open(request, timeout=60) as answer:
            return json.loads(answer.read())

    def stats(self) -> dict[str, Any]:
        """Uploads received since the last `clear()`: {"requests", "ok", "by_status"} (the request log
        also lists video creates, polls and downloads: they are not counted here)."""
        by_status = collections.Counter(str(r["status"]) for r in self.requests("upload"))
        return {"requests": by_status.total(), "ok": by_status.get("200", 0), "by_status": by_status}

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The request log (each with its "kind": upload, create, poll, download), of one kind if given."""
        records: list[dict[str, Any]] = self._call("GET", "requests" + (f"?kind={kind}" if kind else ""))
        return records

    def videos(self) -> list[dict[str, Any]]:
        """Every video made, as it is now (videoId, account, status, statusFinal, percent)."""
        videos: list[dict[str, Any]] = self._call("GET", "videos")
        return videos

    def configure(self, **settings: float) -> dict[str, Any]:
        """`generation_seconds`, `max_jobs` of the videos created from now on."""
        answer: dict[str, Any] = self._call("POST", "settings", settings)
        return answer

    def fail_uploads(self, status: int) -> None:
        """Answer every upload `status` until `clear()`."""
        self._call("POST", "faults", {"kind": "status", "status": status, "times": -1})

    def clear(self) -> None:
        """Drop the faults and the request log."""
        self._call("DELETE", "faults")
        self._call("DELETE", "requests")

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the child stops at EOF
            wait_or_kill(self.proc, 10)


def main() -> int:
    """The child: listen, print {"base_url", "origin"} once listening, stop at EOF on stdin."""
    from watcher.emulator import Emulator

    logging.basicConfig(level=logging.WARNING)
    emulator = Emulator(
        token=os.environ["USEAPI_TOKEN"],
        accounts=os.environ["BENCH_ACCOUNTS"].split(","),
        hash_bodies=os.environ.get("BENCH_EMULATOR_HASH") == "1",
    ).start()
    print(json.dumps({"base_url": emulator.base_url, "origin": emulator.origin}), flush=True)
    sys.stdin.read()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
