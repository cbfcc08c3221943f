"""A hook program the agent runs must not lie where droppers write: one inside a watched folder (or its
done_dir, failed_dir, output_dir), named directly, relative to the config, through a symlink or found on
$PATH, could be replaced by any dropper and run as the agent. `run` refuses such a config (exit 78)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ACCOUNT_A, TOKEN

pytestmark = pytest.mark.hostile


def run_agent(
    tmp_path: Path, config: dict[str, object], path_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), USEAPI_TOKEN=TOKEN)
    if path_env is not None:
        env["PATH"] = path_env
    argv = [sys.executable, "-m", "watcher", "run", "--config", str(tmp_path / "config.yaml")]
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("the agent ran with the hook (killed after 20 s)") from None


def program(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("where", ["relative", "absolute", "symlink", "path", "done_dir"])
def test_a_hook_program_where_droppers_write_is_a_config_error(tmp_path: Path, where: str) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    folder: dict[str, object] = {"path": str(drop), "account": ACCOUNT_A}
    planted = program(drop / "tools" / "notify")
    hook = str(planted)
    path_env = None
    if where == "relative":
        hook = "./drop/tools/notify"
    elif where == "symlink":
        (tmp_path / "notify").symlink_to(planted)
        hook = str(tmp_path / "notify")
    elif where == "path":
        hook, path_env = "notify", f"{drop / 'tools'}:{os.environ.get('PATH', os.defpath)}"
    elif where == "done_dir":
        folder["done_dir"] = str(tmp_path / "done")
        hook = str(program(tmp_path / "done" / "notify"))
    result = run_agent(tmp_path, {"folders": [folder], "hooks": {"on_upload": [hook]}}, path_env)
    assert result.returncode == 78, (where, result.stderr[-400:])
    [line] = result.stderr.strip().splitlines()
    assert "hooks.on_upload" in line and "droppers" in line, line
    assert "Traceback" not in result.stderr
