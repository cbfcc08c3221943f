"""`service install` run as root beside folders others can write (issue 21, item 3; THREAT_MODEL rule 1).

A dropper (uid 65534, the machine's `minimax-drop` group in these tests) renames a drop folder away and
puts a symlink to a folder of root's in its place; or a link sits on the way to a file root writes. The
install's own plan is then run for real on a temporary root (everything but systemd: `plan_install(...,
systemd=False)` and `run_plan`, what `service install` runs): it must refuse with one line, in a dry run
too, change nothing, and leave the link's target as it was.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import TOKEN
from tests.helpers.other_user import AS_NOBODY, NOBODY
from watcher.service.install import plan_install
from watcher.service.plan import Directory, Host, Progress, Step, run_plan
from watcher.service.units import TOKEN_FILE, PlanError

pytestmark = [
    pytest.mark.hostile,
    pytest.mark.skipif(os.geteuid() != 0, reason="root's install, and a second uid, need root"),
]

SERVICE_UID = 990
DROP_GID = NOBODY  # the dropper's own group is the drop group: it writes where minimax-drop may


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A machine whose users, group and token are already there (no systemd-sysusers, no question)."""
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc/passwd").write_text(
        f"root:x:0:0::/root:/bin/sh\nminimax-watcher:x:{SERVICE_UID}:{SERVICE_UID}::/:/sbin/nologin\n"
        f"nobody:x:{NOBODY}:{NOBODY}::/:/sbin/nologin\n"
    )
    (host / "etc/group").write_text(
        f"root:x:0:\nminimax-watcher:x:{SERVICE_UID}:\nminimax-drop:x:{DROP_GID}:\n"
    )
    token = host / TOKEN_FILE.lstrip("/")
    token.parent.mkdir(parents=True)
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    return host


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """What the links point at: a folder of root's, outside the machine's root, with a file in it."""
    folder = tmp_path / "etc-of-root"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (folder / "passwd").chmod(0o644)
    return folder


def state(path: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Mode, owner, group and content of `path` and of everything below it (links not followed)."""
    found = {}
    for here in [path, *sorted(path.rglob("*"))]:
        st = os.lstat(here)
        data = (
            here.read_bytes()
            if stat.S_ISREG(st.st_mode)
            else os.readlink(here).encode()
            if stat.S_ISLNK(st.st_mode)
            else b""
        )
        found[str(here.relative_to(path))] = (st.st_mode, st.st_uid, st.st_gid, data)
    return found


def write_config(root: Path, config: str, folders: list[str]) -> None:
    path = root / config.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"folders": [{"path": f, "account": "123456"} for f in folders]}))


def install(root: Path, config: str, *, dry_run: bool) -> list[str]:
    """What `service install` runs, but for systemd's part; the lines it printed."""

    def no_question() -> str:
        raise AssertionError("the token was asked for")

    steps, _ = plan_install(
        Host(root), config=config, command="/opt/mw/bin/minimax-watcher", runtime=[],
        ask_token=no_question, token_from="standard input", systemd=False,
    )  # fmt: skip
    out = io.StringIO()
    run_plan(steps, Host(root), dry_run=dry_run, out=out)
    return out.getvalue().splitlines()


def refused(root: Path, config: str, *watched: Path) -> str:
    """`service install` and its dry run both refuse, with the same one line, changing nothing."""
    before = [state(w) for w in watched], state(root)
    messages, printed = [], []
    for dry_run in (True, False):
        try:
            printed += install(root, config, dry_run=dry_run)
        except PlanError as refusal:
            messages.append(str(refusal))
        run = "the dry run" if dry_run else "service install"
        assert [state(w) for w in watched] == before[0], f"{run} changed what the link points at"
        assert state(root) == before[1], f"{run} changed something"
    assert len(messages) == 2, "not refused:\n" + "\n".join(printed)
    assert messages[0] == messages[1] and "\n" not in messages[0], messages
    return messages[0]


def as_dropper(folder: Path, script: str) -> None:
    """`sh -c script` as uid/gid 65534, from `folder` (whose parents that user may not even enter)."""
    done = subprocess.run([*AS_NOBODY, "sh", "-euc", script], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, f"the dropper could not: {done.stderr}"


def drop_tree(root: Path, parent_mode: int, parent_owner: tuple[int, int], folder_owner: int) -> Path:
    """/srv/drop (as given) with the drop folders alice and bob in it, 2775 root:minimax-drop."""
    drop = root / "srv/drop"
    drop.mkdir(parents=True)
    for name in ("alice", "bob"):
        (drop / name).mkdir()
        os.chown(drop / name, folder_owner, DROP_GID)
        (drop / name).chmod(0o2775)
    os.chown(drop, *parent_owner)
    drop.chmod(parent_mode)
    return drop


@pytest.mark.parametrize(
    ("parent_mode", "parent_owner", "folder_owner", "who"),
    [
        # What the README told an administrator to make: /srv/drop 2775 root:minimax-drop.
        (0o2775, (0, DROP_GID), 0, "lets the group minimax-drop rename /srv/drop/alice away"),
        # Sticky, but the drop folder is the dropper's own: they may still rename it.
        (0o1777, (0, 0), NOBODY, f"lets uid {NOBODY}, which owns it, rename /srv/drop/alice away"),
        # A parent of the dropper's own.
        (0o755, (NOBODY, DROP_GID), 0, "lets its owner nobody rename /srv/drop/alice away"),
    ],
    ids=["group-writable", "sticky-but-theirs", "owned-by-them"],
)
def test_a_drop_folder_swapped_for_a_link_by_the_dropper_is_refused_and_its_target_untouched(
    root: Path, target: Path, parent_mode: int, parent_owner: tuple[int, int], folder_owner: int, who: str
) -> None:
    drop = drop_tree(root, parent_mode, parent_owner, folder_owner)
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice", "/srv/drop/bob"])
    as_dropper(drop, f"mv alice alice.away && ln -s {target} alice")
    message = refused(root, "/srv/config.yaml", target)
    assert message.startswith("refusing /srv/drop/alice: ") and who in message, message


def test_a_folder_on_the_way_swapped_for_a_link_by_the_dropper_is_refused(root: Path, target: Path) -> None:
    drop = drop_tree(root, 0o2775, (0, DROP_GID), 0)
    (drop / "team").mkdir()
    write_config(root, "/srv/config.yaml", ["/srv/drop/team/alice"])
    as_dropper(drop, f"mv team team.away && ln -s {target} team")
    message = refused(root, "/srv/config.yaml", target)
    assert (
        message.startswith("refusing /srv/drop/team/alice: ")
        and "/srv/drop (root:minimax-drop 2775)" in message
    )


def test_a_parent_the_drop_group_can_write_is_refused_before_anyone_plants_a_link(root: Path) -> None:
    drop_tree(root, 0o2775, (0, DROP_GID), 0)
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    message = refused(root, "/srv/config.yaml")
    assert message.startswith("refusing /srv/drop/alice: /srv/drop (root:minimax-drop 2775) lets the group")
    assert "make /srv/drop root's and writable by root alone (or sticky)" in message


def link(root: Path, path: str, to: Path) -> None:
    place = root / path.lstrip("/")
    place.parent.mkdir(parents=True, exist_ok=True)
    if place.is_dir() and not place.is_symlink():
        shutil.rmtree(place)
    elif place.exists():
        place.unlink()
    place.symlink_to(to)


@pytest.mark.parametrize(
    "planted",
    [
        "/etc/systemd/system",  # the unit's folder: the unit would be written into the target
        "/etc/systemd/system/minimax-watcher.service.d",  # the drop-in's
        "/etc/sysusers.d",
        "/var/lib/minimax-watcher",  # the state folder: the target would be chowned to the service
        "/etc/minimax-watcher",  # the config folder, holding the token
    ],
)
def test_a_link_on_the_way_to_anything_root_writes_is_refused(root: Path, target: Path, planted: str) -> None:
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    if planted == "/etc/minimax-watcher":
        shutil.copy(root / TOKEN_FILE.lstrip("/"), target / "token")  # mode 0644: the install would fix it
    link(root, planted, target)
    message = refused(root, "/srv/config.yaml", target)
    assert f": {planted} is a symlink" in message, message


@pytest.mark.parametrize("planted", [TOKEN_FILE, "/srv/config.yaml"])
def test_a_token_or_config_file_that_is_a_link_is_refused_not_chmodded(
    root: Path, target: Path, planted: str
) -> None:
    real = target / "passwd"
    if planted == "/srv/config.yaml":
        real.write_text(yaml.safe_dump({"folders": [{"path": "/srv/drop/alice", "account": "123456"}]}))
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice"])
    link(root, planted, real)
    message = refused(root, "/srv/config.yaml", target)
    assert message.startswith(f"refusing {planted}: {planted} is a symlink"), message


def test_a_link_put_in_place_after_the_check_is_not_followed(root: Path, target: Path) -> None:
    """The change itself acts on descriptors: a link appearing between check and change is refused too."""
    folder = root / "srv/drop/alice"
    folder.mkdir(parents=True)
    step: Step = Directory("folder /srv/drop/alice", "/srv/drop/alice", create_mode=0o2775, required=0o2070,
                           group="minimax-drop")  # fmt: skip
    host, progress = Host(root), Progress(dry_run=False)
    assert step.pending(host, progress) is not None
    before = state(target)
    folder.rmdir()
    folder.symlink_to(target)
    with pytest.raises(PlanError, match=r"^refusing /srv/drop/alice: /srv/drop/alice is a symlink"):
        step.apply(host, progress)
    assert state(target) == before


def test_a_safe_tree_still_installs(root: Path) -> None:
    """The refusals leave the usual layouts alone: /srv/drop root's 0755, or sticky with root's folders."""
    write_config(root, "/srv/config.yaml", ["/srv/drop/alice", "/srv/sticky/bob"])
    (root / "srv/sticky/bob").mkdir(parents=True)
    (root / "srv/sticky").chmod(0o1777)
    lines = install(root, "/srv/config.yaml", dry_run=False)
    assert "  folder /srv/drop/alice: create (root:minimax-drop 2775)" in lines
    st = os.stat(root / "srv/sticky/bob")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, DROP_GID, 0o2775)
    assert stat.S_IMODE(os.stat(root / "srv/drop").st_mode) == 0o755
