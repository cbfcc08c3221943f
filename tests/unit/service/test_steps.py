"""What `service install` gathers before its plan: the installed command and the Python it runs on (which
the sandbox must not hide), and the token read from standard input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.helpers import TOKEN
from watcher.service.steps import installed_command, read_token, refuse_hidden_runtime, runtime_paths
from watcher.service.units import PlanError

COMMAND = "/opt/minimax-watcher/bin/minimax-watcher"


# ---- the command and the Python it runs on ----------------------------------------------------------------


def test_runtime_paths_name_the_python_of_the_scripts_shebang_and_where_its_links_lead(
    tmp_path: Path,
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to("/root/.pyenv/versions/3.11.7/bin/python3.11")
    script = tmp_path / "bin" / "minimax-watcher"
    script.write_text(f"#!{tmp_path}/bin/python3\nfrom watcher.cli.main import main\n")
    found = dict((what, paths) for what, paths in runtime_paths(str(script)))
    assert found["the minimax-watcher command"] == [str(script)]
    assert found["the Python it runs on"] == [
        f"{tmp_path}/bin/python3",
        "/root/.pyenv/versions/3.11.7/bin/python3.11",
    ]
    assert "the installed watcher package" in found and "Python's standard library" in found


def test_a_venv_in_opt_on_a_python_in_a_pyenv_under_root_is_refused() -> None:
    # The script is visible to the service, the Python it runs on is not.
    runtime = [
        ("the minimax-watcher command", [COMMAND]),
        (
            "the Python it runs on",
            ["/opt/minimax-watcher/bin/python3", "/root/.pyenv/versions/3.11.7/bin/python3.11"],
        ),
    ]
    with pytest.raises(PlanError) as refused:
        refuse_hidden_runtime(runtime)
    message = str(refused.value)
    assert message.startswith(
        "the Python it runs on is /opt/minimax-watcher/bin/python3, which is "
        "/root/.pyenv/versions/3.11.7/bin/python3.11, and the unit's ProtectHome=yes hides /root from the service"
    )
    assert "/usr/bin/python3 -m venv /opt/minimax-watcher" in message
    refuse_hidden_runtime(runtime[:1])  # the script alone is fine


def test_installed_command_is_the_script_run_or_the_one_beside_python(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "minimax-watcher"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert installed_command(str(script), "/usr/bin/python3") == str(script)
    # `python -m watcher service install`: argv[0] is __main__.py; the venv's script is beside python.
    assert installed_command("/x/watcher/__main__.py", str(bin_dir / "python3")) == str(script)
    script.chmod(0o644)
    with pytest.raises(PlanError, match="cannot find the installed minimax-watcher command"):
        installed_command(str(script), str(bin_dir / "python3"))


# ---- the token ------------------------------------------------------------------------------------------


def test_the_token_is_read_from_stdin_trimmed() -> None:
    assert read_token(io.StringIO(f"  {TOKEN}\n")) == TOKEN


@pytest.mark.parametrize(("stdin", "problem"), [("", "no token on standard input"), ("\n \n", "no token")])
def test_no_token_on_stdin_is_refused(stdin: str, problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        read_token(io.StringIO(stdin))


def test_a_malformed_token_is_refused_without_showing_it() -> None:
    with pytest.raises(PlanError) as refused:
        read_token(io.StringIO(f"{TOKEN} {TOKEN}x\n"))
    assert "the token from standard input" in str(refused.value)
    assert TOKEN not in str(refused.value)
