"""An operator lists more folders than the process may open descriptors for (issue 21, N13).

Each watched folder holds its lock file open. With 1,100 folders and a limit of 1,024 (soft and hard, so
the agent cannot raise it) the agent crashed at start with EMFILE, and systemd restarted it into the same
crash. Now: one clear line (how many folders, the limit, what to set), the folders it could take are
served, and the rest are taken once descriptors allow (here: once a reload dropped most folders).
"""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, wait_for, wait_sidecar
from tests.helpers.images import png_bytes
from tests.helpers.limits import agent_descriptor_limit
from watcher.emulator import Emulator

pytestmark = pytest.mark.hostile

FOLDERS = 1100
LIMIT = 1024


def test_more_folders_than_descriptors_is_one_line_and_the_rest_served(
    start_agent, tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = []
    for i in range(FOLDERS):
        folder = tmp_path / f"folder-{i:04}"
        folder.mkdir()
        folders.append({"path": str(folder), "account": ACCOUNT_A})
    agent_descriptor_limit(tmp_path, monkeypatch, LIMIT)
    monkeypatch.setenv("MINIMAX_WATCHER_TIMINGS", "sidecar_retry=1,root_recheck=0.5,descriptor_retry=1")

    agent = start_agent(folders, wait_ready=False)
    agent.wait_ready(timeout=180)
    assert agent.proc is not None
    assert resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE) == (LIMIT, LIMIT)

    first = tmp_path / "folder-0000" / "first.png"
    first.write_bytes(png_bytes(9701))
    wait_sidecar(first, timeout=60)
    log = agent.log()
    assert "Traceback" not in log and agent.proc.poll() is None, log
    lines = [line for line in log.splitlines() if "folders are not watched" in line]
    assert len(lines) == 1, log[-3000:]
    assert f"of {FOLDERS} folders" in lines[0] and f"may open {LIMIT} file descriptors" in lines[0]
    assert "LimitNOFILE=" in lines[0] and "ulimit -n" in lines[0]

    # The operator drops most folders (a reload): the folders left out are taken at the next try.
    config = yaml.safe_load(agent.config_path.read_text())
    config["folders"] = folders[:1] + folders[600:]
    agent.config_path.write_text(yaml.safe_dump(config))
    agent.signal(signal.SIGHUP)
    wait_for(lambda: "every folder is watched now" in agent.log(), 120, "the other folders to be taken")
    last = tmp_path / f"folder-{FOLDERS - 1:04}" / "last.png"
    last.write_bytes(png_bytes(9702))
    wait_sidecar(last, timeout=60)
    assert "Traceback" not in agent.log()
    assert len([line for line in agent.log().splitlines() if "folders are not watched" in line]) == 1
