"""The agent's start does not import `requests`: only a video's download needs it (watcher/video/download.py),
and importing it costs every agent about 4 MB of RSS and a tenth of a second at start, generate or not."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["watcher.agent", "watcher.video.generator"])
def test_starting_the_agent_does_not_import_requests(module: str) -> None:
    code = f"import sys; import {module}; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert [m for m in loaded.split() if m == "requests" or m.startswith("requests.")] == []
