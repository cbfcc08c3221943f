"""The config's `hooks` key: off unless a hook is set; each hook an argv list whose program is checked
at load (it exists and is executable; a command name is found on $PATH and kept as its absolute path, a
path with a slash is relative to the config file's folder), except for the commands that run no hook."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from watcher.config.effective import describe_effective
from watcher.config.load import ConfigError, load_config


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "next-step"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def config_with(tmp_path: Path, drop: Path, hooks_yaml: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"{hooks_yaml}folders:\n  - path: {drop}\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize(
    "hooks_yaml",
    ["", "hooks:\n", "hooks: {}\n", "hooks:\n  # on_upload: [/bin/true]\n", "hooks:\n  timeout_seconds: 5\n"],
)
def test_hooks_are_off_unless_one_is_set(tmp_path: Path, drop: Path, hooks_yaml: str) -> None:
    config = load_config(config_with(tmp_path, drop, hooks_yaml))
    hooks = config.settings.hooks
    assert (hooks.on_upload, hooks.on_failure, hooks.on_attention) == (None, None, None)
    assert not hooks.configured
    assert describe_effective(config, None)["hooks"] == "off"


def test_each_hook_is_an_argv_list_shown_by_check_config(tmp_path: Path, drop: Path, program: Path) -> None:
    hooks_yaml = (
        f"hooks:\n  on_upload: [{program}, --flag, 'two words']\n  on_attention: [{program}]\n"
        "  timeout_seconds: 2.5\n"
    )
    config = load_config(config_with(tmp_path, drop, hooks_yaml))
    hooks = config.settings.hooks
    assert hooks.on_upload == [str(program), "--flag", "two words"]
    assert hooks.argv("on_attention") == [str(program)] and hooks.argv("on_failure") is None
    assert hooks.timeout_seconds == 2.5
    described = describe_effective(config, None)["hooks"]
    assert described == {
        "on_upload": [str(program), "--flag", "two words"],
        "on_attention": [str(program)],
        "timeout_seconds": 2.5,
    }
    assert yaml.safe_load(yaml.safe_dump(described)) == described


def test_the_timeout_defaults_to_a_minute(tmp_path: Path, drop: Path, program: Path) -> None:
    config = load_config(config_with(tmp_path, drop, f"hooks:\n  on_failure: [{program}]\n"))
    assert config.settings.hooks.timeout_seconds == 60


def test_a_command_name_is_found_on_path_and_kept_as_its_absolute_path(
    tmp_path: Path, drop: Path, program: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'empty'}:{program.parent}")
    config = load_config(config_with(tmp_path, drop, "hooks:\n  on_upload: [next-step, --flag]\n"))
    assert config.settings.hooks.on_upload == [str(program), "--flag"]


@pytest.mark.parametrize(
    ("hooks_yaml", "says"),
    [
        (
            "hooks:\n  on_upload: /usr/bin/next-step --flag\n",
            "hooks.on_upload: must be a list, the program and its",
        ),
        ("hooks:\n  on_upload: []\n", "hooks.on_upload: List should have at least 1 item"),
        ("hooks:\n  on_upload: ['']\n", "hooks.on_upload: each word of the command must be non-empty"),
        (
            "hooks:\n  on_upload: [/bin/true, '']\n",
            "hooks.on_upload: each word of the command must be non-empty",
        ),
        ("hooks:\n  on_upload: [/bin/true, 3]\n", "hooks.on_upload[1]: Input should be a valid string"),
        (
            "hooks:\n  on_failure: [bin/no-such-step]\n",
            "hooks.on_failure: the program does not exist: {tmp}/bin/no-such-step",
        ),
        (
            "hooks:\n  on_attention: [/nonexistent/page-me]\n",
            "hooks.on_attention: the program does not exist",
        ),
        (
            "hooks:\n  on_upload: [no-such-command-here]\n",
            "hooks.on_upload: no program 'no-such-command-here' on",
        ),
        ("hooks:\n  on_upload: [/tmp]\n", "hooks.on_upload: not a program (a regular file): /tmp"),
        ("hooks:\n  timeout_seconds: 0\n", "hooks.timeout_seconds: Input should be greater than 0"),
        (
            "hooks:\n  timeout_seconds: 3601\n",
            "hooks.timeout_seconds: Input should be less than or equal to 3600",
        ),
        ("hooks:\n  on_uplod: [/bin/true]\n", "hooks.on_uplod: unknown key"),
    ],
)
def test_a_bad_hook_is_a_config_error_naming_the_key(
    tmp_path: Path, drop: Path, hooks_yaml: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(tmp_path, drop, hooks_yaml))
    assert says.format(tmp=tmp_path) in str(caught.value)


def test_a_program_that_is_not_executable_is_a_config_error(
    tmp_path: Path, drop: Path, program: Path
) -> None:
    program.chmod(0o644)  # no execute bit: not executable even for root
    with pytest.raises(ConfigError, match=r"hooks\.on_upload: the program is not executable \(chmod \+x\?\)"):
        load_config(config_with(tmp_path, drop, f"hooks:\n  on_upload: [{program}]\n"))


@pytest.mark.parametrize("written", ["./bin/next-step", "bin/next-step", "bin/../bin/next-step"])
def test_a_path_with_a_slash_is_relative_to_the_config_files_folder(
    tmp_path: Path, drop: Path, program: Path, written: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the working directory's
    config = load_config(config_with(tmp_path, drop, f"hooks:\n  on_upload: [{written}, --flag]\n"))
    assert config.settings.hooks.on_upload == [str(program), "--flag"]


def test_a_command_name_is_looked_up_on_path_not_beside_the_config(
    tmp_path: Path, drop: Path, program: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "next-step").write_bytes(program.read_bytes())
    (tmp_path / "next-step").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="no program 'next-step' on"):
        load_config(config_with(tmp_path, drop, "hooks:\n  on_upload: [next-step]\n"))


def test_commands_that_run_no_hook_are_warned_not_refused(
    tmp_path: Path, drop: Path, program: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    path = config_with(tmp_path, drop, f"hooks:\n  on_upload: [log-event, --x]\n  on_failure: [{program}]\n")
    with pytest.raises(ConfigError, match="no program 'log-event' on"):
        load_config(path)

    config = load_config(path, for_reading=True)

    assert config.settings.hooks.on_upload == ["log-event", "--x"]  # as written
    assert config.settings.hooks.on_failure == [str(program)]
    [warning] = config.warnings
    assert warning.startswith(f"{path}: hooks.on_upload: no program 'log-event' on $PATH")
    assert warning.endswith("`run` and `scan` would refuse this config")
    assert load_config(config_with(tmp_path, drop, ""), for_reading=True).warnings == ()
