"""`service install`'s plan, run for real on a temporary root: files, folders, owners and modes, the token,
systemd-sysusers --root; and the checks made before anything changes. What needs a running systemd
(check-config as the service, enable, start, uninstall) is tests/e2e/test_service_install.py's job."""

from __future__ import annotations

import io
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import TOKEN
from watcher.config.sample import render_sample
from watcher.service.install import plan_install
from watcher.service.plan import Host, Step, run_plan
from watcher.service.steps import read_token
from watcher.service.units import (
    DROPIN_PATH,
    TOKEN_FILE,
    UNIT_NAME,
    UNIT_PATH,
    PlanError,
    config_folders,
    dropin_values,
    shipped_file,
)

COMMAND = "/opt/minimax-watcher/bin/minimax-watcher"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="files owned by root and minimax-drop need root")
needs_sysusers = pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")


# ---- the plan on a temporary root -----------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A machine's root with only root in its user and group databases."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\n")
    return tmp_path


def write_config(root: Path, inside: str, folders: list[str]) -> None:
    path = root / inside.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"folders": [{"path": f, "account": "123456"} for f in folders]}))


def plan(root: Path, config: str | None, ask: Callable[[], str] | None = None) -> list[Step]:
    def refuse_to_ask() -> str:
        raise AssertionError("the token was asked for")

    steps, _ = plan_install(
        Host(root),
        config=config,
        command=COMMAND,
        runtime=[],
        ask_token=ask or refuse_to_ask,
        token_from="standard input",
        systemd=False,
    )
    return steps


def run(root: Path, steps: list[Step], *, dry_run: bool = False) -> tuple[int, list[str], bool]:
    out = io.StringIO()
    progress = run_plan(steps, Host(root), dry_run=dry_run, out=out)
    return progress.changes, out.getvalue().splitlines(), progress.restart_needed


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every path below `root`: mode, owner, group and content (of files)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = os.lstat(path)
            data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, data)
    return found


def owner_mode(root: Path, inside: str) -> tuple[str, str, str]:
    st = os.stat(root / inside.lstrip("/"))
    host = Host(root)
    user, group = host.owner_text(st).split(":")
    return user, group, f"{stat.S_IMODE(st.st_mode):04o}"


@needs_root
@needs_sysusers
def test_install_on_a_fresh_machine_then_again_changes_nothing(root: Path) -> None:
    write_config(root, "/srv/config.yaml", ["drop/alice", "/data/bob"])
    before = snapshot(root)
    changes, lines, _ = run(root, plan(root, "/srv/config.yaml"), dry_run=True)
    assert snapshot(root) == before, "a dry run changed something"
    assert all(": would " in line for line in lines), lines
    assert changes == len(lines)

    changes, lines, restart = run(root, plan(root, "/srv/config.yaml", lambda: TOKEN))
    assert changes == len(lines) and restart, lines
    assert owner_mode(root, "/srv/drop/alice") == ("root", "minimax-drop", "2775")
    assert owner_mode(root, "/data/bob") == ("root", "minimax-drop", "2775")
    assert owner_mode(root, "/srv/config.yaml") == ("root", "minimax-watcher", "0640")
    assert owner_mode(root, TOKEN_FILE) == ("root", "root", "0600")
    assert (root / TOKEN_FILE.lstrip("/")).read_text() == TOKEN + "\n"
    assert owner_mode(root, "/var/lib/minimax-watcher") == ("minimax-watcher", "minimax-watcher", "0700")
    assert (root / UNIT_PATH.lstrip("/")).read_text() == shipped_file(UNIT_NAME)
    dropin = (root / DROPIN_PATH.lstrip("/")).read_text()
    assert dropin_values(dropin, "ReadWritePaths") == ["/srv/drop/alice", "/data/bob"]
    assert dropin_values(dropin, "ExecStart") == [COMMAND, "run", "--config", "/srv/config.yaml"]
    assert TOKEN not in "\n".join(lines)

    after = snapshot(root)
    changes, lines, restart = run(root, plan(root, "/srv/config.yaml"))
    assert (changes, restart) == (0, False)
    assert all(line.endswith(": unchanged") for line in lines), lines
    assert snapshot(root) == after


@needs_root
@needs_sysusers
def test_a_folder_added_to_the_config_changes_the_folders_and_the_dropin_only(root: Path) -> None:
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    run(root, plan(root, "/srv/config.yaml", lambda: TOKEN))
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice", "/srv/more/carol"])
    os.chown(root / "srv/config.yaml", 0, Host(root).gid("minimax-watcher") or 0)
    os.chmod(root / "srv/config.yaml", 0o640)
    changes, lines, restart = run(root, plan(root, "/srv/config.yaml"))
    changed = [line for line in lines if not line.endswith(": unchanged")]
    assert changed == [
        "  folder /srv/more/carol: create (root:minimax-drop 2775)",
        f"  drop-in {DROPIN_PATH}: replace: the folders or the command changed",
    ]
    assert (changes, restart) == (2, True)
    dropin = (root / DROPIN_PATH.lstrip("/")).read_text()
    assert dropin_values(dropin, "ReadWritePaths") == ["/srv/drop/alice", "/srv/more/carol"]


@needs_root
@needs_sysusers
def test_without_a_config_the_sample_is_written_and_nothing_made_for_its_example_folders(root: Path) -> None:
    steps = plan(root, None)  # the token is not asked for either: the sample comes first
    assert [step.title for step in steps][-1] == "config /etc/minimax-watcher/config.yaml"
    run(root, steps)
    assert (root / "etc/minimax-watcher/config.yaml").read_text() == render_sample()
    assert owner_mode(root, "/etc/minimax-watcher/config.yaml") == ("root", "minimax-watcher", "0640")
    sample_folders = config_folders(render_sample(), "/etc/minimax-watcher").folders
    assert sample_folders and not any((root / folder.lstrip("/")).exists() for folder in sample_folders)
    assert not (root / TOKEN_FILE.lstrip("/")).exists() and not (root / UNIT_PATH.lstrip("/")).exists()


@needs_root
@needs_sysusers
def test_an_existing_drop_folder_keeps_its_owner_and_files_and_gains_the_group(root: Path) -> None:
    folder = root / "srv/drop/alice"
    folder.mkdir(parents=True)
    (folder / "old.png").write_bytes(b"x")
    os.chown(folder, 65534, 0)
    folder.chmod(0o755)
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    run(root, plan(root, "/srv/config.yaml", lambda: TOKEN))
    st = os.stat(folder)
    assert (st.st_uid, st.st_gid) == (65534, Host(root).gid("minimax-drop"))
    assert stat.S_IMODE(st.st_mode) == 0o2775
    assert (folder / "old.png").read_bytes() == b"x"


@needs_root
@needs_sysusers
def test_an_existing_token_is_kept_its_mode_fixed_and_an_empty_one_replaced(root: Path) -> None:
    token = root / TOKEN_FILE.lstrip("/")
    token.parent.mkdir(parents=True)
    token.write_text("user:1-already-there\n")
    token.chmod(0o644)
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    _, lines, _ = run(root, plan(root, "/srv/config.yaml"))  # never asks
    assert f"  token {TOKEN_FILE}: set root:root 0600 (now root:root 0644)" in lines
    assert token.read_text() == "user:1-already-there\n"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600

    token.write_text("\n")
    _, lines, restart = run(root, plan(root, "/srv/config.yaml", lambda: TOKEN))
    assert f"  token {TOKEN_FILE}: store the token read from standard input (the file is empty)" in lines
    assert token.read_text() == TOKEN + "\n" and restart


@needs_root
def test_a_refused_token_changes_nothing(root: Path) -> None:
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    before = snapshot(root)

    def malformed() -> str:
        return read_token(io.StringIO("two tokens\n"))

    with pytest.raises(PlanError, match="blank"):
        run(root, plan(root, "/srv/config.yaml", malformed))
    assert snapshot(root) == before, "the token is read before anything is changed"


@pytest.mark.parametrize(
    ("config", "folders", "problem"),
    [
        ("/root/config.yaml", ["/srv/a"], "the config is /root/config.yaml, and the unit's ProtectHome=yes"),
        ("/srv/config.yaml", ["/home/alice/drop"], "a folder of the config is /home/alice/drop, and"),
        ("/srv/config.yaml", ["/tmp/drop"], "PrivateTmp=yes hides /tmp"),
    ],
)
def test_what_the_sandbox_would_hide_is_refused_before_anything_changes(
    root: Path, config: str, folders: list[str], problem: str
) -> None:
    write_config(root, config, folders)
    with pytest.raises(PlanError, match=problem.replace("(", r"\(")):
        plan(root, config)


def test_a_given_config_that_does_not_exist_is_refused(root: Path) -> None:
    with pytest.raises(PlanError, match="config file not found"):
        plan(root, "/srv/nowhere.yaml")


def test_a_config_the_agent_refuses_is_refused_in_the_agents_words(root: Path) -> None:
    (root / "srv").mkdir()
    (root / "srv/config.yaml").write_text("settle_secs: 1\nfolders:\n  - path: /srv/a\n")
    with pytest.raises(PlanError, match=r"the agent would refuse the config: .*settle_secs: unknown key"):
        plan(root, "/srv/config.yaml")
