"""`status` against names a dropper picks and an agent of another config on the same state folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_status import fail_by_hand, make_folder, status
from tests.helpers import ACCOUNT_A, wait_sidecar
from tests.helpers.agent import AgentProcess
from tests.helpers.images import png_bytes

pytestmark = pytest.mark.hostile


def test_bidi_controls_in_a_name_are_shown_escaped_never_raw(tmp_path: Path) -> None:
    drop = make_folder(tmp_path)
    image = drop / "invoice\u202egnp.exe\u2066.png"
    image.write_bytes(png_bytes(21))
    fail_by_hand(image, "refused \u202eby the API")
    result = status(tmp_path)
    assert result.returncode == 1, result.stderr  # the failed file needs attention
    text = result.stdout.decode()
    assert "\u202e" not in text and "\u2066" not in text
    assert "invoice\\u202egnp.exe\\u2066.png" in text
    assert "refused \\u202eby the API" in text


def test_a_log_line_naming_a_bidi_file_escapes_it(tmp_path: Path) -> None:
    from watcher.redact import escape_control

    assert escape_control("a\u202eb\u200fc\n") == "a\\u202eb\\u200fc\\x0a"


def test_status_of_another_config_does_not_call_its_folders_watched(
    tmp_path: Path, start_agent: Callable[..., AgentProcess], drop: Path
) -> None:
    agent = start_agent([{"path": str(drop), "account": ACCOUNT_A}])
    (drop / "a.png").write_bytes(png_bytes(22))
    wait_sidecar(drop / "a.png")
    # A second config, on the same state folder, listing a folder that agent does not watch.
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.png").write_bytes(png_bytes(23))
    config = tmp_path / "other.yaml"
    config.write_text(yaml.safe_dump({"folders": [{"path": str(other), "account": ACCOUNT_A}]}))

    def status_of(config_name: str, *args: str) -> bytes:
        (tmp_path / "config.yaml").write_text(Path(tmp_path / config_name).read_text())
        result = status(tmp_path, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    (tmp_path / "agent.yaml").write_text(agent.config_path.read_text())
    report = json.loads(status_of("other.yaml", "--json"))
    assert "agent" not in report and report["other_agent"]["folders"] == [str(drop)]
    assert [f["watched"] for f in report["folders"]] == [False]
    text = status_of("other.yaml").decode()
    assert "agent: running" not in text and "runs another config" in text
    # The agent's own config still shows it running and its folder watched.
    mine = json.loads(status_of("agent.yaml", "--json"))
    assert agent.proc is not None and mine["agent"]["pid"] == agent.proc.pid
    assert [f["watched"] for f in mine["folders"]] == [True]
