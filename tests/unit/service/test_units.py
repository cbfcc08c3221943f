"""The unit files and the config as `service install` reads and writes them, without touching a machine:
the shipped files, what the sandbox hides, unit-file quoting and escaping, and the config's folders."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from watcher.service.units import (
    UNIT_NAME,
    PlanError,
    config_folders,
    dropin_values,
    hidden_by_sandbox,
    render_dropin,
    service_settings,
    shipped_file,
    unit_word,
)

REPO = Path(__file__).resolve().parents[3]
COMMAND = "/opt/minimax-watcher/bin/minimax-watcher"


@pytest.mark.parametrize("name", ["minimax-watcher.service", "sysusers.conf", "tmpfiles.conf"])
def test_the_packaged_systemd_files_are_the_documented_ones(name: str) -> None:
    documented = (REPO / "systemd" / name).read_text()
    assert (REPO / "watcher" / "service" / "files" / name).read_text() == documented, (
        f"watcher/service/files/{name} differs from systemd/{name}: copy the one you changed over the other"
    )
    assert shipped_file(name) == documented


def test_the_unit_points_at_the_readme_and_the_help_command() -> None:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    unit = (REPO / "systemd" / UNIT_NAME).read_text()
    documentation = [
        line.removeprefix("Documentation=") for line in unit.splitlines() if line.startswith("Documentation=")
    ]
    assert documentation[0] == urls["Documentation"]
    assert urls["Homepage"] == "https://github.com/minimax-watcher/minimax-watcher"
    # Documentation= takes URLs only; the comment tells where the terminal help is.
    assert "`minimax-watcher help config`" in unit


# ---- what the sandbox hides -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "directive"),
    [
        ("/root/venv/bin/minimax-watcher", "ProtectHome=yes"),
        ("/home/alice/drop", "ProtectHome=yes"),
        ("/home", "ProtectHome=yes"),
        ("/run/user/1000/x", "ProtectHome=yes"),
        ("/tmp/drop", "PrivateTmp=yes"),
        ("/var/tmp/x", "PrivateTmp=yes"),
        ("/opt/minimax-watcher/bin/minimax-watcher", None),
        ("/homework/drop", None),
        ("/srv/drop/alice", None),
    ],
)
def test_hidden_by_sandbox(path: str, directive: str | None) -> None:
    reason = hidden_by_sandbox(path)
    assert (reason is None) if directive is None else (reason is not None and directive in reason)


# ---- unit-file syntax -----------------------------------------------------------------------------------


def test_the_dropin_resets_and_lists_exactly_the_folders() -> None:
    text = render_dropin(COMMAND, "/etc/minimax-watcher/config.yaml", ["/srv/drop/alice", "/data/bob"])
    settings = service_settings(text)
    assert settings == [
        ("ExecStart", ""),
        ("ExecStart", f"{COMMAND} run --config /etc/minimax-watcher/config.yaml"),
        ("ReadWritePaths", ""),
        ("ReadWritePaths", "/srv/drop/alice"),
        ("ReadWritePaths", "/data/bob"),
    ]
    # After the shipped unit, the drop-in's reset leaves only the config's folders.
    assert dropin_values(shipped_file(UNIT_NAME) + text, "ReadWritePaths") == ["/srv/drop/alice", "/data/bob"]


@pytest.mark.parametrize(
    "path", ["/srv/drop/with space", '/srv/a"quote', "/srv/100%", "/srv/$HOME", "/srv/back\\slash", "/srv/é"]
)
def test_paths_systemd_would_split_or_expand_are_quoted_and_escaped(path: str) -> None:
    text = render_dropin(f"{path}/bin/minimax-watcher", f"{path}/config.yaml", [path])
    assert dropin_values(text, "ReadWritePaths") == [path]
    assert dropin_values(text, "ExecStart") == [
        f"{path}/bin/minimax-watcher",
        "run",
        "--config",
        f"{path}/config.yaml",
    ]
    if "%" in path:
        assert "%%" in text  # a single % is a specifier to systemd
    if "$" in path:
        assert "$$" in text.split("ExecStart=", 2)[2]  # in a command line, $ expands a variable


def test_a_path_with_a_line_break_cannot_be_written_to_a_unit() -> None:
    with pytest.raises(PlanError, match="control character"):
        unit_word("/srv/a\nExecStartPre=/bin/evil", in_command=False)


# ---- the config's folders -------------------------------------------------------------------------------


def test_config_folders_are_resolved_as_the_agent_resolves_them() -> None:
    text = yaml.safe_dump(
        {
            "folders": [
                {"path": "drop/alice", "account": "1"},
                {"path": "/data/bob", "done_dir": "/archive/bob", "failed_dir": "failed"},
            ]
        }
    )
    try:
        found = config_folders(text, "/etc/mmw")
    except ValueError:
        pytest.skip("this version's schema has no done_dir/failed_dir yet")
    assert found.folders == ("/etc/mmw/drop/alice", "/data/bob")
    # done_dir outside its folder must be writable too; failed_dir inside is already.
    assert found.writable == ("/etc/mmw/drop/alice", "/data/bob", "/archive/bob")


def test_config_folders_without_done_dir() -> None:
    found = config_folders(yaml.safe_dump({"folders": [{"path": "a"}, {"path": "/b/../c"}]}), "/etc/mmw")
    assert found.folders == found.writable == ("/etc/mmw/a", "/c")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"folders": [{"path": "/a"}, {"path": "/a/b"}]}, "one inside the other"),
        ({"api": {"token_file": "/etc/t"}, "folders": [{"path": "/a"}]}, "api.token_file"),
        ({"api": {"token": "user:1-x"}, "folders": [{"path": "/a"}]}, "api.token"),
    ],
)
def test_configs_the_service_cannot_run_with_are_refused(config: dict[str, object], problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        config_folders(yaml.safe_dump(config), "/etc")


def test_a_config_the_schema_refuses_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        config_folders(yaml.safe_dump({"folders": [{"path": "/a"}], "settle_secs": 1}), "/etc")
