"""Hooks against an operator's mistakes and a local user: kill -9 at the worst moment must not lose a
hook run (at least once), and a proxy password must reach neither the log nor a hook that was not
allowed to have it (THREAT_MODEL.md: operator mistakes; rule 4, secrets)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACCOUNT_A, TOKEN, error_record_of, read_json, sidecar_of, wait_for
from tests.helpers.agent import AgentProcess
from tests.helpers.fanotify import OpenGate
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile

# Records each run into a private folder; prints what it was told to and the proxy variables it got.
HOOK = """#!{python}
import json, os, sys, time
out = {out!r}
document = {{"env": dict(os.environ), "stdin": sys.stdin.read(), "argv": sys.argv}}
name = "%s-%d-%d.json" % (os.environ.get("MINIMAX_EVENT"), os.getpid(), time.monotonic_ns())
with open(os.path.join(out, name), "w") as f:
    json.dump(document, f)
for key in sorted(os.environ):
    if key.lower().endswith("_proxy"):
        print("hook has", key, "=", os.environ[key])
for path in sys.argv[1:]:
    print("hook read", open(path).read().strip())
"""


def private_hook(tmp_path: Path) -> tuple[Path, Path]:
    """The hook program and the folder it records its runs in, both in a folder only root can enter."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    out = private / "runs"
    out.mkdir()
    program = private / "hook"
    program.write_text(HOOK.format(python=sys.executable, out=str(out)))
    program.chmod(0o700)
    return program, out


def runs(out: Path) -> list[dict[str, Any]]:
    return [data for path in sorted(out.glob("*.json")) if (data := read_json(path)) is not None]


def ran_for(out: Path, event: str) -> set[str]:
    return {run["env"]["MINIMAX_FILE"] for run in runs(out) if run["env"].get("MINIMAX_EVENT") == event}


@pytest.mark.parametrize("moves", [False, True], ids=["stays", "moves-to-done-and-failed"])
def test_kill_9_right_after_a_record_is_written_loses_no_hook_run(
    tmp_path: Path, drop: Path, emulator: Emulator, moves: bool
) -> None:
    program, out = private_hook(tmp_path)
    folder: dict[str, Any] = {"path": str(drop), "account": ACCOUNT_A}
    if moves:
        folder.update(done_dir="done", failed_dir="failed")
    agent = AgentProcess(
        tmp_path, emulator.base_url, [folder],
        hooks={"on_upload": [str(program)], "on_failure": [str(program)], "timeout_seconds": 30},
    )  # fmt: skip
    good = [drop / f"shot-{i}.png" for i in range(10)]
    bad = [drop / f"broken-{i}.png" for i in range(2)]
    final = {image: drop / ("done" if image in good else "failed") / image.name if moves else image
             for image in good + bad}  # fmt: skip

    def records() -> list[Path]:
        # stat only: the gate's own thread must not open anything in the folder it gates.
        found = []
        for image in good + bad:
            record_of = sidecar_of if image in good else error_record_of
            found += [record_of(path) for path in {image, final[image]} if record_of(path).exists()]
        return found

    agent.start()
    assert agent.proc is not None
    pid = agent.proc.pid
    written_at_kill: list[Path] = []

    def decide(opener: int, _path: str) -> None:
        # The agent's first open in the folder once a record is there: a sidecar or error record was just
        # renamed into place and the agent is held right after it, before anything it does next.
        if opener == pid and not written_at_kill and (written := records()):
            os.kill(pid, signal.SIGKILL)
            written_at_kill.extend(written)

    gate = OpenGate(drop, decide)
    try:
        for i, image in enumerate(good):
            image.write_bytes(png_bytes(9400 + i))
        for image in bad:
            image.write_text("not an image at all")
        agent.proc.wait(timeout=60)
    finally:
        gate.close()
    assert agent.proc.returncode == -signal.SIGKILL and written_at_kill
    agent.proc = None
    agent.notify.close()

    agent.start()
    try:
        wait_for(
            lambda: len(records()) == len(good) + len(bad), 60, "a record for every file after the restart"
        )
        wait_for(lambda: all(path.exists() for path in final.values()), 60, "every file where it stays")
        wanted = {str(final[image]) for image in good}
        wait_for(lambda: ran_for(out, "upload") >= wanted, 60, "on_upload for every uploaded file")
        failed = {str(final[image]) for image in bad}
        wait_for(lambda: ran_for(out, "failure") >= failed, 60, "on_failure for each")
        for run in runs(out):  # each run names a record that is there, and is the agent's
            record = read_json(Path(run["env"].get("MINIMAX_SIDECAR") or run["env"]["MINIMAX_ERROR_RECORD"]))
            document = json.loads(run["stdin"])
            assert record is not None and all(document.get(key) == value for key, value in record.items())
    finally:
        assert agent.stop() == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proxy_env() -> dict[str, str]:
    """Proxies with passwords in the agent's environment, in both cases; the emulator is reached directly."""
    port = closed_port()
    return {
        "HTTPS_PROXY": f"http://user:s3cret@127.0.0.1:{port}",
        "http_proxy": f"http://other:p%40ssw0rd@127.0.0.1:{port}",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def assert_not_written(root: Path, needles: tuple[str, ...], skip: Path) -> None:
    for folder, _, files in os.walk(root):
        if Path(folder).is_relative_to(skip):
            continue
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                for needle in needles:
                    assert needle.encode() not in data, f"{needle!r} leaked into {path}"


def test_a_hook_never_gets_the_proxy_password_by_default_nor_puts_it_in_the_log(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    program, out = private_hook(tmp_path)
    secrets = tmp_path / "secrets"  # what the hook prints: the password it learnt elsewhere
    secrets.mkdir(mode=0o700)
    (secrets / "proxy-password").write_text("the proxy's password is s3cret\n")
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}],
        hooks={"on_upload": [str(program), str(secrets / "proxy-password")]},
    )  # fmt: skip
    agent.start(extra_env=proxy_env())
    try:
        (drop / "proxied.png").write_bytes(png_bytes(9501))
        [run] = wait_for(lambda: runs(out), 30, "the on_upload hook")
        wait_for(lambda: "hook read" in agent.log(), 30, "the hook's output in the log")
    finally:
        assert agent.stop() == 0
    assert not [key for key in run["env"] if key.lower().endswith("_proxy")]
    assert "USEAPI_TOKEN" not in run["env"]
    assert "the proxy's password is <redacted>" in agent.log()
    assert_not_written(tmp_path, ("s3cret", "p@ssw0rd", "p%40ssw0rd"), skip=secrets)


def test_hooks_pass_proxy_gives_the_proxy_but_never_the_token_and_the_log_stays_clean(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    program, out = private_hook(tmp_path)
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": str(drop), "account": ACCOUNT_A}],
        hooks={"on_upload": [str(program)], "pass_proxy": True},
    )  # fmt: skip
    env = proxy_env()
    # Someone put the token where a proxy password goes: no hook may have it, pass_proxy or not.
    env["FTP_PROXY"] = f"http://x:{TOKEN}@127.0.0.1:1"
    agent.start(extra_env=env)
    try:
        (drop / "proxied.png").write_bytes(png_bytes(9502))
        [run] = wait_for(lambda: runs(out), 30, "the on_upload hook")
        wait_for(lambda: "hook has" in agent.log(), 30, "the hook's output in the log")
    finally:
        assert agent.stop() == 0
    assert run["env"]["HTTPS_PROXY"] == env["HTTPS_PROXY"] and run["env"]["http_proxy"] == env["http_proxy"]
    assert "FTP_PROXY" not in run["env"] and "USEAPI_TOKEN" not in run["env"]
    assert "hook has HTTPS_PROXY = http://<redacted>@127.0.0.1" in agent.log()
    assert_not_written(tmp_path, ("s3cret", "p@ssw0rd", "p%40ssw0rd", TOKEN), skip=out)
