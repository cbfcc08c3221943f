"""Configs the agent cannot use, seen from outside the real `python -m watcher run` process.

At start, each is one line saying what is wrong and exit status 78, never a traceback and status 1
(which would make systemd restart the agent forever); while running, a SIGHUP with such a config is
refused and the agent goes on with the config it has. A token file holding two lines is refused at
start, and the token never reaches the log or STATUS=.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, TOKEN, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes
from tests.helpers.other_user import OtherUser
from watcher.emulator import Emulator

SECOND_LINE = "user:4243-secondLINEofTHEfile"
# TOKEN's own secret part, and the second line's: neither may be seen, in any form.
SECRET_PARTS = (TOKEN.split("-", 1)[1], SECOND_LINE.split("-", 1)[1])


def run_agent(
    config: Path, cwd: Path, *, as_user: OtherUser | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m watcher run` from `cwd`, as this process's user or as `as_user`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG", "NOTIFY_SOCKET", "JOURNAL_STREAM")
    }
    env["XDG_STATE_HOME"] = str(cwd / "state")
    if token is not None:
        env["USEAPI_TOKEN"] = token
    args = ("run", "--config", str(config))
    if as_user is not None:
        return as_user.run(*args, env=env, cwd=cwd)
    argv = [sys.executable, "-m", "watcher", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def assert_refused_in_one_line(result: subprocess.CompletedProcess[str], expected: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 78, output
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "configuration error: " in lines[0], output
    assert expected in lines[0], output
    return lines[0]


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# ---- at start ---------------------------------------------------------------------------------------


def not_utf8(tmp: Path, drop: Path) -> Path:
    path = tmp / "config.yaml"
    path.write_bytes(f"folders:\n  - path: {drop}\n".encode() + b"# r\xe9sum\xe9 folder\n")
    return path


def token_file_not_utf8(tmp: Path, drop: Path) -> Path:
    token = tmp / "token"
    token.write_bytes(b"user:1-\xff\xfe\xfd\n")
    token.chmod(0o600)
    return write_yaml(
        tmp / "config.yaml", {"api": {"token_file": str(token)}, "folders": [{"path": str(drop)}]}
    )


def nested_5000_deep(tmp: Path, drop: Path) -> Path:
    path = tmp / "config.yaml"
    path.write_text(f"folders:\n  - path: {drop}\nextra: " + "[" * 5000 + "]" * 5000 + "\n")
    return path


def path_of_5000_characters(tmp: Path, drop: Path) -> Path:
    return write_yaml(tmp / "config.yaml", {"folders": [{"path": str(drop) + "/" + "x" * 5000}]})


def impossible_date(tmp: Path, drop: Path) -> Path:
    path = tmp / "config.yaml"
    path.write_text(f"settle_seconds: 2026-02-30\nfolders:\n  - path: {drop}\n")
    return path


def base_url_without_a_host(tmp: Path, drop: Path) -> Path:
    return write_yaml(
        tmp / "config.yaml", {"api": {"base_url": "http://[::1/v1/minimax"}, "folders": [{"path": str(drop)}]}
    )


def recursive_yes(tmp: Path, drop: Path) -> Path:
    path = tmp / "config.yaml"
    path.write_text(f"folders:\n  - path: {drop}\n    recursive: yes\n")  # YAML 1.1's boolean
    return path


@pytest.mark.parametrize(
    ("make_config", "expected"),
    [
        pytest.param(
            recursive_yes,
            "folders[0].recursive: 'yes' is not a boolean in this config: write true or false",
            id="recursive-yes",
        ),
        pytest.param(not_utf8, "not UTF-8 text (byte 0xe9 on line 3)", id="config-not-utf8"),
        pytest.param(token_file_not_utf8, "api.token_file: the token file", id="token-file-not-utf8"),
        pytest.param(nested_5000_deep, "nested too deeply", id="yaml-nested-5000-deep"),
        pytest.param(path_of_5000_characters, "File name too long", id="path-of-5000-characters"),
        pytest.param(impossible_date, "not valid YAML", id="impossible-date"),
        pytest.param(base_url_without_a_host, "api.base_url: is not a valid URL", id="bad-base-url"),
    ],
)
def test_a_config_the_agent_cannot_use_is_one_line_and_status_78(
    tmp_path: Path, drop: Path, make_config: Callable[[Path, Path], Path], expected: str
) -> None:
    # A token from the environment for every case but the token file's own, which must be read.
    token = None if make_config is token_file_not_utf8 else TOKEN
    result = run_agent(make_config(tmp_path, drop), tmp_path, token=token)
    assert_refused_in_one_line(result, expected)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder under /tmp that the user `nobody` can enter (pytest's own tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="mmw-config-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_folder_behind_one_the_agent_cannot_enter_is_one_line_and_status_78(
    shared_dir: Path, request: pytest.FixtureRequest
) -> None:
    locked = shared_dir / "locked"
    (locked / "drop").mkdir(parents=True)
    locked.chmod(0o700 if os.geteuid() == 0 else 0o600)  # root's own, or not enterable by anyone
    config = write_yaml(shared_dir / "config.yaml", {"folders": [{"path": "locked/drop"}]})
    config.chmod(0o644)
    # Root enters every folder: it runs the agent as the service user would be. Anyone else is refused.
    as_user: OtherUser | None = request.getfixturevalue("nobody") if os.geteuid() == 0 else None
    try:
        result = run_agent(config, shared_dir, as_user=as_user, token=TOKEN)
    finally:
        locked.chmod(0o755)
    line = assert_refused_in_one_line(result, "folders[0].path: cannot reach the folder")
    assert "Permission denied" in line


def test_a_token_file_holding_two_lines_is_refused_at_start_and_never_shown(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    """Before, requests refused the header on every upload and its error, quoting `Bearer <token>`, went
    to the log on every retry and into the account's pause reason, and so to STATUS=."""
    for n in range(3):
        (drop / f"waiting-{n}.png").write_bytes(png_bytes(900 + n))
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n{SECOND_LINE}\n")
    token_file.chmod(0o600)
    agent = AgentProcess(
        tmp_path,
        emulator.base_url,
        [{"path": str(drop), "account": ACCOUNT_A}],
        api={"base_url": emulator.base_url, "token_file": str(token_file)},
    )
    agent.start(wait_ready=False, token=None)

    def said() -> str:
        statuses = [d.fields["STATUS"] for d in agent.notify.with_field("STATUS")] if agent.notify else []
        return agent.log() + "\n".join(statuses)

    try:
        # Until it exits, or until the secret shows (the old behaviour: it ran on, leaking).
        wait_for(
            lambda: (
                agent.proc is not None
                and (agent.proc.poll() is not None or any(p in said() for p in SECRET_PARTS))
            ),
            30,
            "the agent to refuse the token file",
        )
        seen = said()
        for part in SECRET_PARTS:
            assert part not in seen, f"the token leaked:\n{seen}"
        assert agent.proc is not None and agent.proc.returncode == 78, seen
        assert f"api.token_file ({token_file}): the token holds a line break" in seen
        assert "Traceback" not in seen
        assert emulator.requests == []
    finally:
        agent.stop()


# ---- while running: SIGHUP with such a config is refused --------------------------------------------


@pytest.mark.parametrize(
    "make_config",
    [
        pytest.param(not_utf8, id="config-not-utf8"),
        pytest.param(nested_5000_deep, id="yaml-nested-5000-deep"),
        pytest.param(path_of_5000_characters, id="path-of-5000-characters"),
    ],
)
def test_a_reload_with_a_config_the_agent_cannot_use_is_refused_and_it_keeps_working(
    start_agent: Callable[..., AgentProcess],
    tmp_path: Path,
    drop: Path,
    make_config: Callable[[Path, Path], Path],
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    before = wait_sidecar_of_new_png(drop, "before.png")
    assert before["account"] == ACCOUNT_A

    assert make_config(tmp_path, drop) == agent.config_path  # replaced in place
    assert agent.notify is not None
    datagrams = len(agent.notify.snapshot())
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in agent.log(), 15, "the refused reload in the log")
    agent.notify.wait("READY", "1", after=datagrams)  # back to work, on the old config
    assert agent.proc is not None and agent.proc.poll() is None, agent.log()
    refused = [line for line in agent.log().splitlines() if "reload refused" in line]
    assert len(refused) == 1 and "Traceback" not in agent.log(), agent.log()

    wait_sidecar_of_new_png(drop, "after.png")
    assert agent.stop() == 0, agent.log()


def wait_sidecar_of_new_png(drop: Path, name: str) -> dict[str, object]:
    image = drop / name
    image.write_bytes(png_bytes(sum(name.encode())))
    return wait_sidecar(image)
