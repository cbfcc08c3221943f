"""The steps `service install`/`uninstall` are made of, each on its own, on a temporary root with its own
user and group databases: what each says it would change, what it changes, and `run_plan`'s promises (the
checks before anything changes, a dry run that touches nothing, a second run that changes nothing)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from watcher.service.plan import (
    Command,
    Directory,
    EmptyDirectoryRemoved,
    ExistingFile,
    Host,
    InstalledFile,
    Progress,
    RemovedFile,
    Step,
    run_plan,
)
from watcher.service.units import PlanError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="files owned by other users need root")
DROP_UID, DROP_GID = 990, 991


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A machine's root with root and the drop user and group."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        f"root:x:0:0::/root:/bin/sh\ndropper:x:{DROP_UID}:{DROP_GID}::/:/bin/false\n"
    )
    (tmp_path / "etc" / "group").write_text(f"root:x:0:\nminimax-drop:x:{DROP_GID}:\n")
    return tmp_path


def mode_owner(path: Path) -> tuple[str, int, int]:
    st = os.lstat(path)
    return f"{stat.S_IMODE(st.st_mode):04o}", st.st_uid, st.st_gid


def pending(step: Step, root: Path) -> str | None:
    return step.pending(Host(root), Progress(dry_run=True))


def apply(step: Step, root: Path) -> None:
    step.apply(Host(root), Progress(dry_run=False))


def test_the_host_reads_users_and_groups_and_resolves_links_inside_its_root(root: Path) -> None:
    host = Host(root)
    assert (host.uid("dropper"), host.gid("minimax-drop"), host.uid("nobody")) == (DROP_UID, DROP_GID, None)
    (root / "srv" / "real").mkdir(parents=True)
    (root / "srv" / "link").symlink_to("real")
    assert host.resolve("/srv/link") == "/srv/real"
    (root / "srv" / "out").symlink_to("/etc")
    assert host.resolve("/srv/out/../x") == "/srv/x", "a link leading out of the root is not followed out"
    assert host.at("/etc/passwd") == root / "etc" / "passwd"


def test_an_installed_file_is_written_then_unchanged_and_put_right_when_it_drifts(root: Path) -> None:
    step = InstalledFile(
        "unit", "/etc/systemd/system/x.service", "[Unit]\n", mode=0o640, group="minimax-drop"
    )
    assert pending(step, root) == "write (root:minimax-drop 0640)"
    apply(step, root)
    path = root / "etc/systemd/system/x.service"
    assert path.read_text() == "[Unit]\n" and mode_owner(path) == ("0640", 0, DROP_GID)
    assert pending(step, root) is None
    os.chmod(path, 0o666)
    assert pending(step, root) == "set root:minimax-drop 0640 (now root:minimax-drop 0666)"
    path.write_text("[Unit]\nedited\n")
    assert pending(step, root) == "replace: it differs from the shipped file"
    apply(step, root)
    assert path.read_text() == "[Unit]\n" and mode_owner(path) == ("0640", 0, DROP_GID)
    assert sorted(os.listdir(path.parent)) == ["x.service"], "no temporary left beside it"


def test_an_existing_file_gets_its_owner_and_mode_and_is_written_only_when_it_may_be(root: Path) -> None:
    (root / "srv").mkdir()
    config = root / "srv/config.yaml"
    config.write_text("mine")
    step = ExistingFile("config", "/srv/config.yaml", mode=0o640, owner="root", group="minimax-drop")
    assert pending(step, root) == "set root:minimax-drop 0640 (now root:root 0644)"
    apply(step, root)
    assert config.read_text() == "mine" and mode_owner(config) == ("0640", 0, DROP_GID)
    assert pending(step, root) is None
    missing = ExistingFile("token", "/srv/token", mode=0o600, owner="root", group="root")
    with pytest.raises(PlanError, match="/srv/token does not exist"):
        pending(missing, root)
    made = ExistingFile("token", "/srv/token", mode=0o600, owner="root", group="root", create=lambda: "t\n")
    assert pending(made, root) == "write it (root:root 0600)"
    apply(made, root)
    assert (root / "srv/token").read_text() == "t\n" and mode_owner(root / "srv/token") == ("0600", 0, 0)
    (root / "srv/dir").mkdir()
    with pytest.raises(PlanError, match="is not a regular file"):
        pending(ExistingFile("d", "/srv/dir", mode=0o600, owner="root", group="root"), root)


def test_a_directory_is_made_or_given_the_bits_it_needs_keeping_its_owner(root: Path) -> None:
    made = Directory("state", "/var/lib/mmw", create_mode=0o750, group="minimax-drop")
    assert pending(made, root) == "create (root:minimax-drop 0750)"
    apply(made, root)
    assert mode_owner(root / "var/lib/mmw") == ("0750", 0, DROP_GID)
    assert mode_owner(root / "var/lib") == ("0755", 0, 0), "parents made 0755"
    assert pending(made, root) is None

    drop = root / "srv/drop"
    drop.mkdir(parents=True)
    os.chown(drop, DROP_UID, 0)
    os.chmod(drop, 0o700)
    (drop / "a.png").write_bytes(b"png")
    shared = Directory("drop", "/srv/drop", create_mode=0o2775, required=0o2070, group="minimax-drop")
    assert pending(shared, root) == "set dropper:minimax-drop 2770 (now dropper:root 0700)"
    apply(shared, root)
    assert mode_owner(drop) == ("2770", DROP_UID, DROP_GID), "its owner kept, the bits added"
    assert (drop / "a.png").exists()
    (root / "srv/file").write_text("")
    with pytest.raises(PlanError, match="exists and is not a directory"):
        pending(Directory("f", "/srv/file", create_mode=0o755), root)


def test_a_removed_file_removes_a_link_not_what_it_points_to(root: Path) -> None:
    (root / "etc/target").write_text("kept")
    (root / "etc/link").symlink_to("target")
    step = RemovedFile("link", "/etc/link")
    step.check(Host(root))  # a link is fine here: removing it does nothing through it
    assert pending(step, root) == "remove"
    apply(step, root)
    assert not (root / "etc/link").is_symlink() and (root / "etc/target").read_text() == "kept"
    assert pending(step, root) is None


def test_a_directory_is_removed_only_when_nothing_else_is_in_it(root: Path) -> None:
    (root / "etc/dropin").mkdir()
    (root / "etc/dropin/ours.conf").write_text("")
    (root / "etc/dropin/theirs.conf").write_text("")
    step = EmptyDirectoryRemoved("dropin", "/etc/dropin", leaving="ours.conf")
    assert pending(step, root) is None, "someone else's file: kept"
    (root / "etc/dropin/theirs.conf").unlink()
    # A dry run finds ours.conf still there: the step before, which removes it, only said it would.
    assert pending(step, root) == "remove (empty)"
    (root / "etc/dropin/ours.conf").unlink()
    assert pending(step, root) == "remove (empty)"
    apply(step, root)
    assert not (root / "etc/dropin").exists()
    assert pending(step, root) is None


def test_a_command_runs_when_needed_and_its_failure_is_a_plan_error(root: Path) -> None:
    assert pending(Command("reload", ["true"], needed=lambda host, progress: None), root) is None
    assert pending(Command("reload", ["true"]), root) == "run `true` (run it)"
    apply(Command("ok", ["true"]), root)
    with pytest.raises(PlanError, match=r"`sh -c echo no >&2; exit 3` failed \(3\): no"):
        apply(Command("fails", ["sh", "-c", "echo no >&2; exit 3"]), root)
    with pytest.raises(PlanError, match="is not installed"):
        apply(Command("missing", ["/nonexistent/systemctl"]), root)


class Refusing(Step):
    title = "refusing"

    def check(self, host: Host) -> None:
        raise PlanError("refused")


def test_every_check_runs_before_anything_changes(root: Path) -> None:
    steps = [InstalledFile("unit", "/etc/x.conf", "x\n"), Refusing()]
    with pytest.raises(PlanError, match="refused"):
        run_plan(steps, Host(root), dry_run=False, out=io.StringIO())
    assert not (root / "etc/x.conf").exists()


def test_a_dry_run_says_what_it_would_do_and_a_second_run_changes_nothing(root: Path) -> None:
    looks = Command("look", ["true"])
    looks.is_check = True  # as check-config: runs every time, changes nothing
    steps: list[Step] = [
        Directory("folder", "/srv/d", create_mode=0o755),
        InstalledFile("unit", "/srv/d/x.service", "x\n", units=True),
        InstalledFile("config", "/srv/d/c.conf", "c\n", restarts=True),
        looks,
    ]
    out = io.StringIO()
    progress = run_plan(steps, Host(root), dry_run=True, out=out)
    assert out.getvalue().splitlines() == [
        "  folder: would create (root:root 0755)",
        "  unit: would write (root:root 0644)",
        "  config: would write (root:root 0644)",
        "  look: would run `true` (run it)",
    ]
    assert (progress.changes, progress.units_changed, progress.restart_needed) == (3, True, True)
    assert not (root / "srv").exists()
    out = io.StringIO()
    assert run_plan(steps, Host(root), dry_run=False, out=out).changes == 3
    assert out.getvalue().splitlines()[0] == "  folder: create (root:root 0755)"
    out = io.StringIO()
    again = run_plan(steps, Host(root), dry_run=False, out=out)
    assert (again.changes, again.units_changed, again.restart_needed) == (0, False, False)
    assert out.getvalue().splitlines() == [
        "  folder: unchanged",
        "  unit: unchanged",
        "  config: unchanged",
        "  look: run `true` (run it)",
    ]
