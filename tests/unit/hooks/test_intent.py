"""Hook runs journalled before their record (at least once across kill -9), the journal's group commit,
and what a hook's environment holds of the proxy settings."""

from __future__ import annotations

import base64
import json
import os
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TOKEN, wait_for
from tests.unit.hooks.test_runner import FAST_RETRY, Logged, journal_runs, recorded
from watcher.config.load import HooksSettings
from watcher.config.token import register_proxy_secrets
from watcher.disk.records import write_sidecar_atomically
from watcher.hooks.events import HookEvent
from watcher.hooks.intent import RecordPlace
from watcher.hooks.journal import HookJournal, PendingRun
from watcher.hooks.runner import HookRunner, hook_environment
from watcher.redact import REPLACEMENT, redact, register_secret, withheld_in
from watcher.state import journal as journal_file

RECORD = """
    import json, os, sys
    out = os.path.join(sys.argv[1], f"{os.getpid()}.json")
    with open(out + ".tmp", "w") as f:
        json.dump({"env": dict(os.environ), "stdin": sys.stdin.read()}, f)
    os.replace(out + ".tmp", out)
"""


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[Logged]:
    logged = Logged(f"test.hook_intent.{request.node.name}")
    yield logged
    logged.logger.removeHandler(logged.handler)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def make_runner(tmp_path: Path, logged: Logged, runs: Path) -> Iterator[Callable[[], HookRunner]]:
    script = tmp_path / "record.py"
    script.write_text(textwrap.dedent(RECORD))
    hooks = HooksSettings(on_upload=[sys.executable, str(script), str(runs)])
    made: list[HookRunner] = []

    def make() -> HookRunner:
        runner = HookRunner(hooks, tmp_path / "state", 2, logged.logger, retry=FAST_RETRY, kill_grace=0.5)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop(timeout=0)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def uploaded(
    drop: Path, name: str = "cat.png", file_id: str = "user:1-minimax:1-file:77"
) -> tuple[Path, dict[str, Any]]:
    image = drop / name
    image.write_bytes(b"\x89PNG bytes")
    sidecar = {
        "fileID": file_id,
        "sha256": "ab" * 32,
        "file": name,
        "uploadedAt": "2026-05-01T12:00:00Z",
        "ino": image.stat().st_ino,
    }
    return image, sidecar


def prepare(
    runner: HookRunner, drop: Path, image: Path, sidecar: dict[str, Any], dest: Path | None = None
) -> Any:
    place = RecordPlace(str(drop), str(image), ".json", str(dest) if dest else None, image.stat().st_ino)
    prepared = runner.prepare(HookEvent.for_upload(str(image), str(drop), sidecar), place)
    assert prepared is not None
    return prepared


def test_a_run_is_on_disk_before_its_record_and_runs_once_committed_where_the_file_went(
    tmp_path: Path, drop: Path, runs: Path, make_runner: Callable[[], HookRunner]
) -> None:
    runner = make_runner()
    runner.start()
    image, sidecar = uploaded(drop)
    prepared = prepare(runner, drop, image, sidecar, tmp_path / "done")
    assert journal_runs(tmp_path / "state") == 1  # before the sidecar exists
    runner.commit(prepared, str(tmp_path / "done" / "cat-1.png"))
    [run] = recorded(runs)
    assert run["env"]["MINIMAX_FILE"] == str(tmp_path / "done" / "cat-1.png")
    assert run["env"]["MINIMAX_SIDECAR"] == str(tmp_path / "done" / "cat-1.png.json")
    assert json.loads(run["stdin"])["file"] == "cat-1.png"
    wait_for(lambda: runner.pending == 0 and journal_runs(tmp_path / "state") == 0, 10, "the run to leave")


@pytest.mark.parametrize("where", ["in place", "moved", "never written", "planted"])
def test_a_run_prepared_before_a_kill_runs_if_and_only_if_its_record_was_written(
    tmp_path: Path, drop: Path, runs: Path, logged: Logged, make_runner: Callable[[], HookRunner], where: str
) -> None:
    done = tmp_path / "done"
    image, sidecar = uploaded(drop)
    prepare(make_runner(), drop, image, sidecar, done)  # then killed: never committed
    expected = image
    if where == "in place":
        write_sidecar_atomically(str(image), sidecar)
    elif where == "moved":  # done/cat.png was taken: the file went to cat-1.png, with its sidecar
        done.mkdir()
        (done / "cat.png").write_bytes(b"someone else's")
        expected = done / "cat-1.png"
        os.link(image, expected)
        image.unlink()
        write_sidecar_atomically(str(expected), {**sidecar, "file": "cat-1.png"})
    elif where == "planted":  # a sidecar beside it, but not the one the agent wrote
        write_sidecar_atomically(str(image), {**sidecar, "fileID": "user:1-minimax:1-file:66"})

    restarted = make_runner()
    restarted.start()
    restarted.release_held()
    wait_for(lambda: restarted.pending == 0, 15, "the held run to be decided")
    if where in ("never written", "planted"):
        assert list(runs.glob("*.json")) == []
        assert any("was never written" in line for line in logged.lines("INFO"))
        return
    [run] = recorded(runs)
    assert run["env"]["MINIMAX_FILE"] == str(expected)
    assert json.loads(run["stdin"])["fileID"] == sidecar["fileID"]


def test_appends_of_many_threads_share_one_fsync(tmp_path: Path, logged: Logged, monkeypatch: Any) -> None:
    journal = HookJournal(tmp_path / "state", logged.logger)
    threads = 8
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def first_waits_for_every_append(fd: int) -> None:
        # The first fsync lasts until every thread has appended: they all wait for the next one.
        if not fsyncs:
            file = journal._journal.file
            assert file is not None
            wait_for(lambda: len(file._pending) == threads - 1, 10, "every other thread's append queued")
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(journal_file.os, "fsync", first_waits_for_every_append)
    workers = [
        threading.Thread(target=journal.add, args=(PendingRun(f"run-{i}", {"n": i}),)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(20)
    monkeypatch.undo()
    assert not any(worker.is_alive() for worker in workers)
    assert len(fsyncs) == 2  # the first one's, then one for the seven that came meanwhile
    journal.close()
    assert {entry.run_id for entry in HookJournal(tmp_path / "state", logged.logger).load()} == {
        f"run-{i}" for i in range(threads)
    }


PROXY_ENV = {
    "HTTPS_PROXY": "http://user:s3cret@proxy.example:3128",
    "all_proxy": "socks5://bob:p%40ss%3Aword@proxy.example:1080",
    "no_proxy": "localhost",
    "PATH": "/usr/bin",
}


def test_every_form_of_a_proxy_password_is_redacted() -> None:
    register_proxy_secrets(PROXY_ENV)
    basic = base64.b64encode(b"bob:p@ss:word").decode()
    for text in ("s3cret", "p%40ss%3Aword", "p@ss:word", basic, "user:s3cret", "bob:p@ss:word"):
        assert text not in redact(f"proxy said {text}!"), text
    assert redact(PROXY_ENV["HTTPS_PROXY"]) == f"http://{REPLACEMENT}@proxy.example:3128"
    assert not withheld_in(PROXY_ENV["HTTPS_PROXY"])  # a hook may be given it, if configured so


def test_a_hook_gets_the_proxy_variables_only_when_configured_and_never_the_token() -> None:
    register_secret(TOKEN)
    register_proxy_secrets(PROXY_ENV)
    base = {**PROXY_ENV, "FTP_PROXY": f"http://x:{TOKEN}@proxy.example:1"}
    assert hook_environment({}, base) == {"PATH": "/usr/bin"}
    passed = hook_environment({}, base, pass_proxy=True)
    assert passed == {**PROXY_ENV}  # FTP_PROXY holds the token: never passed
