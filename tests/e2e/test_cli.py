"""The command line as users run it: real subprocesses, real files, the real emulator."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml

from tests.helpers import ACCOUNT_A, TOKEN, error_record_of, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes, sha256
from watcher.cli.parser import EMULATOR_PORT
from watcher.emulator import Emulator


def cli(
    *args: str, cwd: Path, token: str | None = TOKEN, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "MINIMAX_WATCHER_CONFIG")}
    env["XDG_STATE_HOME"] = str(cwd / "state")
    if token is not None:
        env["USEAPI_TOKEN"] = token
    result = subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert TOKEN not in result.stdout + result.stderr, "the token leaked into the command's output"
    return result


def write_config(tmp_path: Path, base_url: str, folders: list[dict[str, object]], **extra: object) -> Path:
    config = {"api": {"base_url": base_url}, "settle_seconds": 0.5, "folders": folders, **extra}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "scan", "upload", "status", "retry", "check-config", "emulate"):
        assert command in result.stdout


def test_check_config_prints_effective_config_without_the_token(tmp_path: Path, drop: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:9/v1/minimax", [{"path": "drop", "account": ACCOUNT_A}])

    result = cli("check-config", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["folders"][0]["path"] == str(drop.resolve())
    assert effective["settle_seconds"] == 0.5
    assert "redacted" in effective["api"]["token"]
    assert TOKEN not in result.stdout + result.stderr


def test_config_errors_name_the_key_and_exit_78(tmp_path: Path, drop: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9/v1/minimax", [{"path": "drop", "acount": ACCOUNT_A}])

    for command in ("check-config", "run", "scan", "status"):
        result = cli(command, "--config", str(path), cwd=tmp_path)
        assert result.returncode == 78, (command, result.stderr)
        assert "folders[0].acount: unknown key" in result.stderr


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:9/v1/minimax", [{"path": "nowhere"}])
    result = cli("check-config", cwd=tmp_path)
    assert result.returncode == 78
    assert "folders[0].path: folder does not exist" in result.stderr


def test_run_without_a_token_says_how_to_give_one(tmp_path: Path, drop: Path) -> None:
    write_config(tmp_path, "http://127.0.0.1:9/v1/minimax", [{"path": "drop"}])
    result = cli("run", cwd=tmp_path, token=None)
    assert result.returncode == 78
    assert "USEAPI_TOKEN" in result.stderr and "--emulate" in result.stderr


def test_scan_uploads_pending_files_and_reports_failures(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A}])
    for i in range(3):
        (drop / f"img-{i}.png").write_bytes(png_bytes(300 + i))

    result = cli("scan", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for i in range(3):
        assert json.loads(sidecar_of(drop / f"img-{i}.png").read_text())["sha256"] == sha256(
            png_bytes(300 + i)
        )
    assert len(emulator.uploads) == 3

    (drop / "broken.png").write_text("not an image")
    result = cli("scan", cwd=tmp_path)
    assert result.returncode == 1
    assert error_record_of(drop / "broken.png").exists()
    assert len(emulator.uploads) == 3, "a second scan must not upload done files again"


def test_scan_says_an_empty_file_is_empty_writes_no_record_and_exits_0(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A}])
    (drop / "empty.png").write_bytes(b"")
    (drop / "cat.png").write_bytes(png_bytes(305))

    result = cli("scan", cwd=tmp_path)

    # Not a failure, as for `run`: no error record, and the exit code of a scan that uploaded all it could.
    assert result.returncode == 0, result.stderr
    assert "empty.png: empty file: nothing to upload" in result.stderr
    assert "1 empty file not uploaded" in result.stderr
    assert "temporary errors" not in result.stderr
    assert not error_record_of(drop / "empty.png").exists()
    assert sidecar_of(drop / "cat.png").exists()
    (drop / "empty.png").write_bytes(png_bytes(306))  # written at last: the next scan uploads it
    assert cli("scan", cwd=tmp_path).returncode == 0
    assert sidecar_of(drop / "empty.png").exists()


def test_scan_with_failed_dir_counts_the_failures_it_moved_and_exits_1(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    write_config(
        tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A, "failed_dir": "failed"}]
    )
    (drop / "bad.png").write_text("not an image")

    result = cli("scan", cwd=tmp_path)

    assert error_record_of(drop / "failed" / "bad.png").exists()
    assert result.returncode == 1, result.stderr
    assert "scan finished: 0 uploaded, 1 failed" in result.stderr
    again = cli("scan", cwd=tmp_path)  # still there: still failed, as `status` says
    assert again.returncode == 1 and "0 uploaded, 1 failed" in again.stderr


def test_upload_prints_the_sidecar(tmp_path: Path, drop: Path, emulator: Emulator) -> None:
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A}])
    image = drop / "single.png"
    image.write_bytes(png_bytes(310))

    result = cli("upload", str(image), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(sidecar_of(image).read_text())
    assert printed["account"] == ACCOUNT_A
    assert printed["fileID"] == emulator.uploads[0].file_id


def test_upload_of_a_non_image_fails(tmp_path: Path, drop: Path, emulator: Emulator) -> None:
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A}])
    (drop / "notes.png").write_text("hello")
    result = cli("upload", str(drop / "notes.png"), cwd=tmp_path)
    assert result.returncode == 1
    assert "not a PNG, JPEG or WebP image" in result.stderr
    assert emulator.requests == []


def test_status_json_counts_uploaded_pending_and_failed(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A}])
    (drop / "done.png").write_bytes(png_bytes(320))
    (drop / "bad.png").write_text("nope")
    cli("scan", cwd=tmp_path)
    (drop / "new.png").write_bytes(png_bytes(321))

    result = cli("status", "--json", cwd=tmp_path)

    assert result.returncode == 1, result.stderr  # a failed file needs attention: see status --help
    [folder] = json.loads(result.stdout)["folders"]
    assert (folder["uploaded"], folder["pending"], folder["failed"]) == (1, 1, 1)
    assert folder["account"] == ACCOUNT_A
    assert folder["failures"] == [{"file": "bad.png", "error": "not a PNG, JPEG or WebP image"}]
    text = cli("status", cwd=tmp_path).stdout
    assert "uploaded 1, pending 1, failed 1" in text


def test_retry_and_status_of_a_folder_that_makes_videos(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    """Uploaded before `generate` was turned on: nothing asks for videos until `retry` does."""
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A}])
    (drop / "done.png").write_bytes(png_bytes(340))
    (drop / "bad.png").write_text("nope")
    cli("scan", cwd=tmp_path)
    generate = {"model": "I2V-2.3", "max_per_day": 7}
    write_config(tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A, "generate": generate}])

    result = cli("retry", "drop/bad.png", "drop/done.png", "drop/new.png", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{drop / 'bad.png'}: error record (not a PNG, JPEG or WebP image) cleared: the agent uploads it again",
        f"{drop / 'done.png'}: done, no video: a video will be requested",
        f"{drop / 'new.png'}: no such file: nothing to retry",
        f"asked the agent: no agent runs on {tmp_path / 'state' / 'minimax-watcher'} now; the agent takes it "
        "at its next start",
    ]
    [request] = (tmp_path / "state" / "minimax-watcher" / "retry").iterdir()
    assert json.loads(request.read_text())["paths"] == [str(drop / "done.png")]
    assert not (drop / "bad.png.error.json").exists()  # cleared: the next scan or run takes it again
    outside = cli("retry", "/etc/hostname", cwd=tmp_path)
    assert outside.returncode == 2 and "/etc/hostname: not inside a configured folder" in outside.stderr

    status = json.loads(cli("status", "--json", cwd=tmp_path).stdout)
    [folder] = status["folders"]
    assert folder["videos"] == {
        "queued": 0, "generating": 0, "done": 0, "failed": 0, "unknown": 0, "in_progress": [], "recent": []
    }  # fmt: skip
    [account] = status["video_accounts"]
    assert (account["account"], account["today"], account["cap"], account["in_flight"]) == (
        ACCOUNT_A,
        0,
        7,
        0,
    )
    assert account["max_jobs"] == 2 and account["paused_until"] is None
    text = cli("status", cwd=tmp_path).stdout
    assert "  videos: queued 0, generating 0, done 0, failed 0, unknown 0\n" in text
    assert f"videos, account={ACCOUNT_A}: 0 of 7 today (UTC), 0 of 2 in flight\n" in text


def test_retry_tells_of_the_running_agent_that_takes_it(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    (drop / "bad.png").write_text("nope")
    generate = {"model": "I2V-2.3", "poll_seconds": 1}
    agent = AgentProcess(
        tmp_path, emulator.base_url, [{"path": "drop", "account": ACCOUNT_A, "generate": generate}]
    )
    agent.start()
    try:
        record = error_record_of(drop / "bad.png")
        wait_for(record.exists, 20, "the error record of bad.png")
        first = record.stat().st_ino
        assert agent.proc is not None
        result = cli("retry", "--failed", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == (
            "asked the agent to retry the failed and unknown ones it knows of: the running agent "
            f"(pid {agent.proc.pid}) takes it within seconds"
        )
        # Its error record cleared by the command, the running agent takes the file again (and, as it
        # is still not an image, records that again).
        wait_for(lambda: record.exists() and record.stat().st_ino != first, 20, "a new error record")
    finally:
        assert agent.stop() == 0, agent.log()


def test_run_emulate_needs_no_token(tmp_path: Path, drop: Path) -> None:
    """The README's first command: the shipped config shape, no token, the built-in emulator."""
    agent = AgentProcess(tmp_path, "https://api.useapi.net/v1/minimax", [{"path": "drop"}])
    agent.start(args=("--emulate",), token=None)
    try:
        (drop / "try.png").write_bytes(png_bytes(330))
        sidecar = wait_sidecar(drop / "try.png")
        assert sidecar["fileID"].startswith("user:1-minimax:")
        assert sidecar["sha256"] == sha256(png_bytes(330))
    finally:
        assert agent.stop() == 0, agent.log()


@contextlib.contextmanager
def port_taken(port: int) -> Iterator[bool]:
    """Hold `port` on loopback; True when held here (False: something else holds it already)."""
    with socket.socket() as held:
        try:
            held.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            yield False
            return
        held.listen()
        yield True


def test_run_emulate_says_where_its_emulator_is_when_8787_is_taken(tmp_path: Path, drop: Path) -> None:
    """The README's `curl localhost:8787/_emulator/...` cannot work then: the line gives the URL to use."""
    agent = AgentProcess(tmp_path, "https://api.useapi.net/v1/minimax", [{"path": "drop"}])
    with port_taken(EMULATOR_PORT) as held_here:
        agent.start(args=("--emulate",), token=None)
        try:
            [line] = [line for line in agent.log().splitlines() if "emulating the API at" in line]
            if held_here:
                assert f"port {EMULATOR_PORT} is taken, so emulating the API at" in line
            origin = re.search(r"emulating the API at (http://127\.0\.0\.1:\d+) ", line)
            assert origin is not None and origin[1] != f"http://127.0.0.1:{EMULATOR_PORT}", line
            assert f"curl {origin[1]}/_emulator/requests" in line
            (drop / "where.png").write_bytes(png_bytes(332))
            file_id = wait_sidecar(drop / "where.png")["fileID"]
            listed = requests.get(f"{origin[1]}/_emulator/requests", timeout=10).json()
            assert [(r["kind"], r["file_id"]) for r in listed] == [("upload", file_id)]
        finally:
            assert agent.stop() == 0, agent.log()


def test_upload_emulate_needs_no_token_and_stops_its_emulator(tmp_path: Path) -> None:
    image = tmp_path / "alone.png"
    image.write_bytes(png_bytes(333))

    result = cli("upload", "--emulate", str(image), cwd=tmp_path, token=None)

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["fileID"].startswith("user:1-minimax:123456-file:") and printed["account"] == "123456"
    assert printed["baseUrl"].startswith("http://127.0.0.1:")
    assert json.loads(sidecar_of(image).read_text())["fileID"] == printed["fileID"]
    assert "emulating the API at http://127.0.0.1:" in result.stderr


def test_upload_without_a_token_says_emulate_is_there(tmp_path: Path) -> None:
    image = tmp_path / "alone.png"
    image.write_bytes(png_bytes(334))
    result = cli("upload", str(image), cwd=tmp_path, token=None)
    assert result.returncode == 78 and "--emulate" in result.stderr, result.stderr


def test_reload_watches_a_new_folder_and_keeps_old_config_when_invalid(
    start_agent, tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    second = tmp_path / "second"
    second.mkdir()
    config = yaml.safe_load(agent.config_path.read_text())

    config["folders"].append({"path": str(second), "account": ACCOUNT_A, "bogus": 1})
    agent.config_path.write_text(yaml.safe_dump(config))
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in agent.log(), 10, "the refused reload to be logged")
    (drop / "still.png").write_bytes(png_bytes(340))
    wait_sidecar(drop / "still.png")

    del config["folders"][1]["bogus"]
    agent.config_path.write_text(yaml.safe_dump(config))
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in agent.log(), 10, "the reload to be logged")
    (second / "new.png").write_bytes(png_bytes(341))
    assert wait_sidecar(second / "new.png")["sha256"] == sha256(png_bytes(341))
    assert agent.notify is not None and agent.notify.seen("RELOADING=1")


def test_read_only_commands_warn_about_a_hook_program_that_only_run_needs(tmp_path: Path, drop: Path) -> None:
    """`status` on a machine where the hook is not on the caller's $PATH: a warning, not exit 78."""
    write_config(
        tmp_path,
        "http://127.0.0.1:9/v1/minimax",
        [{"path": "drop", "account": ACCOUNT_A}],
        hooks={"on_upload": ["log-event-not-on-path"]},
    )
    said = "hooks.on_upload: no program 'log-event-not-on-path' on $PATH"

    for command in (("status",), ("check-config",), ("scan", "--dry-run")):
        result = cli(*command, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert said in result.stderr and "`run` and `scan` would refuse this config" in result.stderr

    for command in (("run",), ("scan",), ("check-config", "--strict")):
        result = cli(*command, cwd=tmp_path)
        assert result.returncode == 78, (command, result.stderr)
        assert said in result.stderr


def test_a_hook_program_relative_to_the_config_file_runs(
    tmp_path: Path, drop: Path, emulator: Emulator
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "log-event").write_text(f'#!/bin/sh\necho "$MINIMAX_FILE_ID" > {tmp_path}/hook-ran\n')
    (hooks / "log-event").chmod(0o755)
    write_config(
        tmp_path,
        emulator.base_url,
        [{"path": "drop", "account": ACCOUNT_A}],
        hooks={"on_upload": ["./hooks/log-event"]},
    )
    (drop / "hooked.png").write_bytes(png_bytes(350))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("scan", "--config", str(tmp_path / "config.yaml"), cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    file_id = json.loads(sidecar_of(drop / "hooked.png").read_text())["fileID"]
    assert (tmp_path / "hook-ran").read_text().strip() == file_id
