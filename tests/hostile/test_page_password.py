"""The page's password is registered as a secret, so every answer and log line has it replaced: a short
one ("true", "path") would be cut out of /api/status itself (its JSON broken or its keys renamed), and is
guessed over HTTP besides. One too short is a config error (78), in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, TOKEN
from tests.helpers.videos import free_port

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize("password", ["true", "path", "folder1"])
def test_a_short_page_password_is_a_config_error(tmp_path: Path, drop: Path, password: str) -> None:
    secret = tmp_path / "page-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    config = {
        "folders": [{"path": str(drop), "account": ACCOUNT_A}],
        "status_page": {"listen": f"0.0.0.0:{free_port()}", "password_file": "page-password"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), USEAPI_TOKEN=TOKEN)
    argv = [sys.executable, "-m", "watcher", "run", "--config", str(tmp_path / "config.yaml")]
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("the agent served the page with that password (killed after 20 s)") from None
    assert result.returncode == 78, result.stderr[-400:]
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert "status_page.password_file" in line and "at least 12" in line and password not in line, line
