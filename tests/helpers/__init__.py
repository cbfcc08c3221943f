"""What the tests share: the one token and the accounts, waiting on conditions, reading sidecars.

`tests.helpers.agent` runs the real agent as a process, `tests.helpers.notify` is a fake
$NOTIFY_SOCKET, `tests.helpers.images` makes real image bytes. Fixtures live in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watcher import redact

TOKEN = "user:4242-testtokenDONOTLEAK"
ACCOUNT_A = "111111"
ACCOUNT_B = "222222"
ACCOUNT = "123456"  # the single account of the `emu` fixture: uploads may leave it out


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


def clear_secrets() -> None:
    """Forget every secret registered with `watcher.redact` (tests register many; the agent forgets none)."""
    with redact._lock:
        redact._secrets = redact._withheld = ()


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


def assert_token_never_written(root: Path) -> None:
    """No log, sidecar, error record or any other file the agent left may contain the token."""
    needle = TOKEN.encode()
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20:
                with path.open("rb") as f:
                    assert needle not in f.read(), f"the token leaked into {path}"


def status_report(result: Any) -> dict[str, Any]:
    """`status --json`'s report, its exit status checked against it: 1 exactly when something in it
    needs attention (`watcher.cli.status.needs_attention`), else 0."""
    from watcher.cli.status import ATTENTION_EXIT, needs_attention

    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (ATTENTION_EXIT if needs_attention(report) else 0), result.stderr
    return report
