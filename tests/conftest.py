"""Fixtures: the real emulator on loopback and the real agent as a process; helpers are in tests/helpers.

Nothing is mocked: the agent is `python -m watcher run`, watching real folders with inotify,
uploading over real sockets to the emulator running in the test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ACCOUNT, ACCOUNT_A, ACCOUNT_B, TOKEN, assert_token_never_written, leaks
from tests.helpers.agent import AgentProcess
from tests.helpers.other_user import OtherUser, other_user
from watcher.emulator import Emulator
from watcher.upload.client import UploadClient

AGENT_LOG_TAIL = 200  # lines of each agent's log shown under a failed test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that ran agents shows the tail of each one's log: CI keeps nothing else."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for n, agent in enumerate(item.stash.get(AGENTS, [])):
            lines = agent.log().splitlines()[-AGENT_LOG_TAIL:]
            report.sections.append((f"agent {n} log (last {len(lines)} lines)", "\n".join(lines)))


AGENTS = pytest.StashKey[list[AgentProcess]]()


@pytest.fixture(autouse=True)
def leaves_no_thread_or_process() -> Iterator[None]:
    """Fails a test that leaves a thread alive or a child process behind (running, or exited and never
    reaped), naming each; autouse, so it is torn down after the test's other fixtures."""
    before = leaks.snapshot()
    yield
    leaked = leaks.leaked_since(before)
    if leaked:
        pytest.fail("the test left behind:\n  " + "\n  ".join(leaked), pytrace=False)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=[ACCOUNT_A, ACCOUNT_B]) as emu:
        yield emu


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def start_agent(
    request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator
) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []
    request.node.stash[AGENTS] = agents

    def start(folders: list[dict[str, Any]], *, wait_ready: bool = True, **settings: Any) -> AgentProcess:
        agent = AgentProcess(tmp_path, emulator.base_url, folders, **settings)
        agents.append(agent)
        return agent.start(wait_ready=wait_ready)

    yield start
    for agent in agents:
        code = agent.stop()
        assert code == 0, f"agent exited with {code}:\n{agent.log()}"
    assert_token_never_written(tmp_path)


@pytest.fixture(scope="session")
def nobody() -> Iterator[OtherUser]:
    """Runs `python -m watcher` as uid/gid 65534 wherever the checkout lives (skips, saying why, if it cannot)."""
    with other_user() as runner:
        yield runner


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator whose token has a single account, so uploads may leave the account out."""
    with Emulator(token=TOKEN, accounts=[ACCOUNT]) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[UploadClient]:
    c = UploadClient(emu.base_url, TOKEN, connect_timeout=5, read_timeout=10)
    yield c
    c.close()
