"""The dropper against `.minimax-watcher.lock` (issue 21, N3 and N8): whatever they put at the lock name,
before the start or while the agent runs, the agent keeps running and serving its other folders, says
once what is wrong, and only another agent ever makes it stand by."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_monitoring import free_port, scrape, status_of
from tests.helpers import ACCOUNT_A, ACCOUNT_B, sidecar_of, wait_for, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.dropper import Dropper
from tests.helpers.images import png_bytes
from watcher.emulator import Emulator
from watcher.watch.lock import LOCK_NAME

pytestmark = pytest.mark.hostile


@pytest.fixture
def shared() -> Iterator[Path]:
    """Two drop folders the dropper (uid 65534) can write, as the `minimax-drop` group can."""
    top = Path(tempfile.mkdtemp(prefix="mmw-lockfile-", dir="/tmp"))
    top.chmod(0o755)
    for name in ("drop", "other"):
        (top / name).mkdir()
        (top / name).chmod(0o777)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def start(tmp_path: Path, shared: Path, emulator: Emulator, port: int) -> AgentProcess:
    folders = [{"path": str(shared / "drop"), "account": ACCOUNT_A},
               {"path": str(shared / "other"), "account": ACCOUNT_B}]  # fmt: skip
    return AgentProcess(tmp_path, emulator.base_url, folders, metrics={"listen": f"127.0.0.1:{port}"}).start()


def gauges(port: int, folder: Path) -> tuple[float | None, float | None]:
    samples = scrape(port)
    label = (("folder", str(folder)),)
    return (
        samples.get(("minimax_watcher_folder_lock_blocked", label)),
        samples.get(("minimax_watcher_folder_standing_by", label)),
    )


KINDS = ["directory", "socket", "fifo", "symlink"]


def said_blocked(drop: Path, kind: str) -> re.Pattern[str]:
    """The one line that says what is at the lock name (and what to do about it)."""
    article = "a FIFO" if kind == "fifo" else f"a {kind}"
    return re.compile(
        rf"{re.escape(str(drop))}: cannot hold this folder: \S+ is {article}, not a lock file: remove it"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_that_is_not_a_lock_file_before_the_start_stops_only_its_folder(
    tmp_path: Path, shared: Path, emulator: Emulator, kind: str
) -> None:
    drop, other, lock = shared / "drop", shared / "other", shared / "drop" / LOCK_NAME
    said = said_blocked(drop, kind)
    port = free_port()
    with Dropper() as dropper:
        dropper.do(f"plant({str(lock)!r}, {kind!r})")
        agent = start(tmp_path, shared, emulator, port)
        try:
            (drop / "waits.png").write_bytes(png_bytes(5100))
            (other / "one.png").write_bytes(png_bytes(5101))
            wait_sidecar(other / "one.png", timeout=30)  # the other folder is served
            wait_for(lambda: gauges(port, drop) == (1, 0), 30, "the folder reported blocked")
            assert gauges(port, other) == (0, 0)
            [blocked] = status_of(agent)["agent"]["lock_blocked"]
            assert blocked["folder"] == str(drop) and said.search(
                f"{drop}: cannot hold this folder: {blocked['problem']}"
            )
            assert len(said.findall(agent.log())) == 1, agent.log()
            assert not sidecar_of(drop / "waits.png").exists()
            dropper.do(f"clear({str(lock)!r})")  # what the line says to do
            wait_sidecar(drop / "waits.png", timeout=30)  # looked at again, and taken
            wait_for(lambda: gauges(port, drop) == (0, 0), 30, "the folder reported held")
        finally:
            code = agent.stop()
    assert code == 0, agent.log()
    assert "Traceback" not in agent.log()


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_that_is_not_a_lock_file_put_there_while_it_runs_stops_only_its_folder(
    tmp_path: Path, shared: Path, emulator: Emulator, kind: str
) -> None:
    drop, other, lock = shared / "drop", shared / "other", shared / "drop" / LOCK_NAME
    said = said_blocked(drop, kind)
    port = free_port()
    with Dropper() as dropper:
        agent = start(tmp_path, shared, emulator, port)
        try:
            (drop / "first.png").write_bytes(png_bytes(5102))
            wait_sidecar(drop / "first.png", timeout=30)
            dropper.do(f"swap_in({str(lock)!r}, {kind!r})")  # over the agent's own lock file
            wait_for(lambda: said.search(agent.log()), 30, "the line about the lock name")
            (drop / "later.png").write_bytes(png_bytes(5103))
            (other / "two.png").write_bytes(png_bytes(5104))
            wait_sidecar(other / "two.png", timeout=30)  # the other folder is still served
            wait_for(lambda: gauges(port, drop) == (1, 0), 30, "the folder reported blocked")
            assert agent.proc is not None and agent.proc.poll() is None
            assert len(said.findall(agent.log())) == 1, agent.log()
            assert not sidecar_of(drop / "later.png").exists()
            dropper.do(f"clear({str(lock)!r})")
            wait_sidecar(drop / "later.png", timeout=30)
        finally:
            code = agent.stop()
    assert code == 0, agent.log()
    assert "Traceback" not in agent.log()


def owner(path: Path) -> int | None:
    """The uid of what is at `path`; None while nothing is (the agent replaces a foreign lock file by
    moving it aside before its own takes the name)."""
    try:
        return path.stat().st_uid
    except FileNotFoundError:
        return None


def test_a_lock_the_dropper_holds_on_a_file_of_their_own_does_not_make_the_agent_abandon_the_folder(
    tmp_path: Path, shared: Path, emulator: Emulator
) -> None:
    drop, lock = shared / "drop", shared / "drop" / LOCK_NAME
    # What an agent writes, word for word: only the owner gives it away.
    forged = json.dumps({"kind": "minimax-watcher lock", "host": "agenthost", "pid": 1, "uid": 0,
                         "started": "2026-12-01T00:00:00Z", "nonce": "cd" * 16}).encode()  # fmt: skip
    port = free_port()
    with Dropper() as dropper:
        dropper.do(f"hold({str(lock)!r}, {forged!r})")  # before the start
        agent = start(tmp_path, shared, emulator, port)
        try:
            (drop / "first.png").write_bytes(png_bytes(5200))
            wait_sidecar(drop / "first.png", timeout=30)
            assert lock.stat().st_uid == 0
            assert gauges(port, drop) == (0, 0)
            assert "another agent holds this folder" not in agent.log()
            assert agent.log().count("replaced .minimax-watcher.lock") == 1

            dropper.do(f"hold({str(lock)!r}, {forged!r})")  # while it runs: renamed over the agent's
            wait_for(lambda: owner(lock) == 0, 30, "the agent's own lock file back at the name")
            (drop / "second.png").write_bytes(png_bytes(5201))
            wait_sidecar(drop / "second.png", timeout=30)
            assert gauges(port, drop) == (0, 0)
            assert "another agent holds this folder" not in agent.log()
        finally:
            code = agent.stop()
    assert code == 0, agent.log()
    assert "Traceback" not in agent.log()
