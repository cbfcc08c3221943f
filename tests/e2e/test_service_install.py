"""`minimax-watcher service install` / `uninstall` under a real systemd, on a machine that has nothing yet.

A fresh container (tests/helpers/container.py) gets what a user has after `pip install`: a venv in
/opt/minimax-watcher made with the system's Python, into which pip installs a wheel built from this
checkout (so the unit files must come from the package's data, not from a checkout). The dependencies
are copied in from this test's own environment, so that pip needs no index inside the container. Then
`service install` with a config of two folders (that do not exist yet) and the token on stdin, and the
checks of issue 12: a running, hardened service that uploads from both folders; a second install
that changes nothing; a folder added, then install again; uninstall, which keeps what it should; a
venv under /root refused; and the token nowhere it should not be.

Skipped with a banner where the container cannot boot (MINIMAX_WATCHER_REQUIRE_SYSTEMD=1 makes that a
failure instead).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import TOKEN
from tests.helpers.container import (
    EMULATOR_PORT,
    REPO,
    UNIT,
    CannotBoot,
    Container,
    base_python,
    booted_container,
    copy_distributions,
    runtime_distributions,
    sidecar,
    start_emulator,
)
from tests.helpers.images import png_bytes
from watcher.config.sample import render_sample

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PREFIX = "/opt/minimax-watcher"
COMMAND = f"{PREFIX}/bin/minimax-watcher"
STAGE = "/mmw-stage"  # the wheel and the dependencies, bound read-only into the container
ACCOUNT = "123456"
CONFIG = "/etc/minimax-watcher/config.yaml"
TOKEN_FILE = "/etc/minimax-watcher/token"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
DROPIN = f"/etc/systemd/system/{UNIT}.d/10-service-install.conf"
ALICE, BOB, CAROL = "/srv/drop/alice", "/data/bob", "/data/more/carol"
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


# ---- a package as pip installs it -----------------------------------------------------------------------


def stage(workdir: Path) -> dict[Path, str]:
    """A wheel of this checkout, and the dependencies' files (pip's among them) to copy into a venv."""
    staged = workdir / "stage"
    copy_distributions(runtime_distributions("pip"), staged / "site")
    # Bytecode now: the venv is read-only for the service, and compiling pydantic at every start is slow.
    subprocess.run([base_python(), "-m", "compileall", "-q", "-j", "2", str(staged / "site")], check=True)
    source = workdir / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "watcher", source / "watcher", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-cache-dir",
            "-w",
            str(staged),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise CannotBoot(
            "cannot build a wheel of this checkout (pip wheel needs setuptools>=68 from the package index, "
            f"as `pip install -e .` does): {built.stderr.strip()[-500:]}"
        )
    return {staged: STAGE}


def pip_install(box: Container, prefix: str) -> None:
    """`python3 -m venv PREFIX && PREFIX/bin/pip install minimax-watcher`, offline."""
    box.run(base_python(), "-m", "venv", "--without-pip", prefix)
    box.run("cp", "-a", f"{STAGE}/site/.", f"{prefix}/{SITE}/")
    wheels = sorted(box.path(STAGE).glob("minimax_watcher-*.whl"))
    assert len(wheels) == 1, wheels
    box.run(
        "env",
        "PIP_CONFIG_FILE=/dev/null",  # this machine's pip.conf may name an index the container cannot reach
        f"{prefix}/bin/python3",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-cache-dir",
        "--disable-pip-version-check",
        f"{STAGE}/{wheels[0].name}",
        timeout=120,
    )


def config_yaml(*folders: str) -> str:
    return yaml.safe_dump(
        {
            "api": {"base_url": f"http://localhost:{EMULATOR_PORT}/v1/minimax"},
            "settle_seconds": 0.5,
            "folders": [{"path": folder, "account": ACCOUNT} for folder in folders],
        }
    )


class CmdlineWatch:
    """Looks through every process's argv, on the host (the container's processes included), until stopped."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CmdlineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sweep()  # once more, after the command's end

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._sweep()
            self._stop.wait(0.005)

    def _sweep(self) -> None:
        # Not Path.glob: it stats each match, and a process that ends meanwhile makes that raise.
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # it ended meanwhile
            if TOKEN.encode() in argv:
                self.found.append(argv.replace(b"\0", b" ").decode(errors="replace"))


# The outputs of every service command the tests ran, and the argv the watch saw with the token in it.
OUTPUTS: list[str] = []
LEAKED_ARGV: list[str] = []


def service(
    box: Container, *args: str, token: str | None = None, command: str = COMMAND
) -> subprocess.CompletedProcess[str]:
    """`minimax-watcher service ARGS` in the container, the token (if any) on its stdin."""
    with CmdlineWatch() as watch:
        result = box.run(
            command, "service", *args, check=False, timeout=180, input=token.encode() if token else b""
        )
    LEAKED_ARGV.extend(watch.found)
    OUTPUTS.append(result.stdout + result.stderr)
    return result


def steps(output: str) -> dict[str, str]:
    """The step lines of an install or uninstall: title -> what was done, or "unchanged"."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"  (\S.*?): (.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def files_state(box: Container, *paths: str) -> dict[str, tuple[int, int, int, int] | None]:
    """Inode, mtime, mode and owner of each path (None where it does not exist)."""
    found: dict[str, tuple[int, int, int, int] | None] = {}
    for inside in paths:
        try:
            st = box.path(inside).stat()
            found[inside] = (st.st_ino, st.st_mtime_ns, st.st_mode, st.st_uid)
        except FileNotFoundError:
            found[inside] = None
    return found


WATCHED = (
    CONFIG,
    TOKEN_FILE,
    UNIT_PATH,
    DROPIN,
    "/etc/sysusers.d/minimax-watcher.conf",
    ALICE,
    BOB,
    "/etc/passwd",
)


def owner_mode(box: Container, inside: str) -> list[str]:
    return box.run("stat", "-c", "%U:%G %a", inside).stdout.split()


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box(request: pytest.FixtureRequest) -> Iterator[Container]:
    """A machine with minimax-watcher pip-installed in /opt, a config of two folders, and no service."""
    with booted_container(request, stage) as container:
        pip_install(container, PREFIX)
        start_emulator(container, COMMAND, TOKEN, ACCOUNT)
        # As a user would leave it: readable by all, owned by root. The folders do not exist yet.
        container.write(CONFIG, config_yaml(ALICE, BOB), mode=0o644)
        yield container


@pytest.fixture(scope="module")
def installed(box: Container) -> subprocess.CompletedProcess[str]:
    """The first `service install`, the token on stdin."""
    result = service(box, "install", token=TOKEN + "\n")
    assert result.returncode == 0, result.stdout + result.stderr + box.unit_log()
    return result


# ---- the checks -----------------------------------------------------------------------------------------


def test_install_from_a_venv_under_root_is_refused_and_changes_nothing(box: Container) -> None:
    pip_install(box, "/root/venv")
    before = files_state(box, *WATCHED)
    result = service(box, "install", token=TOKEN + "\n", command="/root/venv/bin/minimax-watcher")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "the minimax-watcher command is /root/venv/bin/minimax-watcher, and the unit's ProtectHome=yes hides "
        "/root from the service, so it could not start" in result.stderr
    )
    assert "/opt/minimax-watcher/bin/minimax-watcher service install" in result.stderr
    assert files_state(box, *WATCHED) == before


def test_dry_run_prints_every_step_and_changes_nothing(box: Container) -> None:
    before = files_state(box, *WATCHED)
    active = box.show()["ActiveState"]
    result = service(box, "install", "--dry-run", token=TOKEN + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    done = steps(result.stdout)
    assert len(done) >= 14, result.stdout
    assert all(what == "unchanged" or what.startswith("would ") for what in done.values()), result.stdout
    assert "Dry run: nothing was changed." in result.stdout
    assert files_state(box, *WATCHED) == before
    assert box.show()["ActiveState"] == active
    if before[UNIT_PATH] is None:  # the first of this module's installs is still to come
        assert done[f"folder {BOB}"] == "would create (root:minimax-drop 2775)"
        assert done[UNIT] == "would start it, and wait for READY=1 (the first scan of every folder)"


def test_without_systemctl_the_dry_run_prints_its_plan_and_install_refuses_changing_nothing(
    box: Container,
) -> None:
    before = files_state(box, *WATCHED)
    no_systemd = ("env", f"PATH={PREFIX}/bin")  # a machine without systemd: no systemctl on $PATH
    dry = box.run(*no_systemd, COMMAND, "service", "install", "--dry-run", check=False, input=b"")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Traceback" not in dry.stdout + dry.stderr
    done = steps(dry.stdout)
    assert done[f"folder {BOB}"] == "would create (root:minimax-drop 2775)", dry.stdout
    assert "daemon-reload" not in done and UNIT not in done, dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    assert "Without systemd here (no systemctl on $PATH), the steps that need it are left out" in dry.stdout
    real = box.run(*no_systemd, COMMAND, "service", "install", check=False, input=TOKEN.encode() + b"\n")
    assert real.returncode == 1, real.stdout + real.stderr
    assert real.stderr.strip() == (
        "service install: no systemctl on $PATH: the service needs systemd; nothing was changed "
        "(--dry-run shows the plan)"
    )
    assert files_state(box, *WATCHED) == before
    gone = box.run(*no_systemd, COMMAND, "service", "uninstall", "--dry-run", check=False)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "Without systemd here (no systemctl on $PATH): nothing to stop" in gone.stdout
    assert UNIT not in steps(gone.stdout) and "Would keep:" in gone.stdout, gone.stdout
    assert files_state(box, *WATCHED) == before


def test_without_a_config_install_writes_the_sample_and_stops_before_folders_token_and_service(
    box: Container,
) -> None:
    if box.path(UNIT_PATH).exists():
        pytest.skip("runs before the module's first install (the sample's folder is one of the config's)")
    box.run("mv", CONFIG, f"{CONFIG}.kept")  # a newcomer's machine: no config yet
    try:
        dry = service(box, "install", "--dry-run", token=TOKEN + "\n")
        assert dry.returncode == 78, dry.stdout + dry.stderr
        assert steps(dry.stdout)[f"config {CONFIG}"].startswith("would write a commented sample")
        assert (
            dry.stdout.strip()
            .splitlines()[-1]
            .startswith(
                "Dry run: nothing was changed. service install would write the sample and stop before any drop folder"
            )
        )
        assert not box.path(CONFIG).exists()
        result = service(box, "install", token=TOKEN + "\n")
        assert result.returncode == 78, result.stdout + result.stderr
        assert box.path(CONFIG).read_text() == render_sample()
        said = result.stdout.strip().splitlines()[-1]
        assert said.startswith(
            f"Stopped before any drop folder, token or service: edit {CONFIG} first, its `folders:`"
        )
        assert "the next run asks for it" in said and said.endswith(
            f"Then run again: {COMMAND} service install"
        )
        for made in (ALICE, TOKEN_FILE, UNIT_PATH, DROPIN):
            assert not box.path(made).exists(), f"{made} was made before the sample was edited"
        assert box.show()["ActiveState"] == "inactive"
    finally:
        box.run("mv", f"{CONFIG}.kept", CONFIG)


def test_install_leaves_a_running_hardened_service_that_uploads_from_every_folder(
    box: Container, installed: subprocess.CompletedProcess[str]
) -> None:
    assert "active: 2 folders watched" in installed.stdout
    assert "Drop a first image" in installed.stdout
    assert "Active: active (running)" in installed.stdout  # systemctl status, at the end
    state = box.show()
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    assert box.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    # Exactly the config's folders are writable, and the command is the installed one.
    dropin = box.path(DROPIN).read_text()
    assert re.findall(r"^ReadWritePaths=(.*)$", dropin, re.M) == ["", ALICE, BOB]
    assert re.findall(r"^ExecStart=(.*)$", dropin, re.M) == ["", f"{COMMAND} run --config {CONFIG}"]
    assert box.path(UNIT_PATH).read_text() == (REPO / "systemd" / UNIT).read_text()
    assert owner_mode(box, TOKEN_FILE) == ["root:root", "600"]
    assert owner_mode(box, CONFIG) == ["root:minimax-watcher", "640"]
    for folder in (ALICE, BOB):
        assert owner_mode(box, folder) == ["root:minimax-drop", "2775"]
    assert owner_mode(box, "/var/lib/minimax-watcher") == ["minimax-watcher:minimax-watcher", "700"]
    # Still rated as the shipped unit is: the drop-in loosens nothing.
    security = box.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security)
    assert match is not None and float(match.group(1)) <= 1.5, security
    for seed, folder in enumerate((ALICE, BOB)):
        image = f"{folder}/first.png"
        box.write(image, png_bytes(20 + seed), mode=0o640, owner="nobody:minimax-drop")
        assert re.fullmatch(rf"user:\d+-minimax:{ACCOUNT}-file:\d+", sidecar(box, image)["fileID"])


def test_install_again_changes_nothing(box: Container, installed: subprocess.CompletedProcess[str]) -> None:
    before = files_state(box, *WATCHED)
    pid = box.show()["MainPID"]
    result = service(box, "install")  # no token on stdin: it is not asked for
    assert result.returncode == 0, result.stdout + result.stderr
    done = steps(result.stdout)
    checks = {title: what for title, what in done.items() if what != "unchanged"}
    assert list(checks) == ["check-config as the service"], result.stdout
    assert "ok (token <redacted, from systemd credential useapi-token>)" in result.stdout
    assert "Everything was already in place: nothing changed." in result.stdout
    assert files_state(box, *WATCHED) == before
    assert box.show()["MainPID"] == pid, "the service was restarted"


def test_a_hook_program_the_service_cannot_find_is_refused_before_it_is_used(
    box: Container, installed: subprocess.CompletedProcess[str]
) -> None:
    """`status` and `check-config` only warn of it; the check run as the service is strict, as `run` is."""
    pid = box.show()["MainPID"]
    config = yaml.safe_load(config_yaml(ALICE, BOB)) | {"hooks": {"on_upload": ["no-such-hook-here"]}}
    box.write(CONFIG, yaml.safe_dump(config), mode=0o640, owner="root:minimax-watcher")
    try:
        result = service(box, "install")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "check-config, run as the service would run, exited with 78" in output
        assert "hooks.on_upload: no program 'no-such-hook-here' on $PATH" in output
        assert box.show()["MainPID"] == pid, "the running service was left alone"
    finally:
        box.write(CONFIG, config_yaml(ALICE, BOB), mode=0o640, owner="root:minimax-watcher")


def test_a_folder_added_to_the_config_then_install_again_uploads_from_it(
    box: Container, installed: subprocess.CompletedProcess[str]
) -> None:
    pid = box.show()["MainPID"]
    box.write(CONFIG, config_yaml(ALICE, BOB, CAROL), mode=0o640, owner="root:minimax-watcher")
    result = service(box, "install")
    assert result.returncode == 0, result.stdout + result.stderr + box.unit_log()
    done = steps(result.stdout)
    assert done[f"folder {CAROL}"] == "create (root:minimax-drop 2775)"
    assert done[f"drop-in {DROPIN}"] == "replace: the folders or the command changed"
    assert done[UNIT].startswith("restart it")
    assert "active: 3 folders watched" in result.stdout
    assert box.show()["MainPID"] != pid
    assert re.findall(r"^ReadWritePaths=(.*)$", box.path(DROPIN).read_text(), re.M) == ["", ALICE, BOB, CAROL]
    image = f"{CAROL}/added.png"
    box.write(image, png_bytes(30), mode=0o640, owner="nobody:minimax-drop")
    assert sidecar(box, image)["file"] == "added.png"
    owner = box.run("stat", "-c", "%U:%G", image + ".json").stdout.strip()
    assert owner == "minimax-watcher:minimax-drop"


def test_the_token_is_never_in_the_journal_an_argv_or_the_unit(
    box: Container, installed: subprocess.CompletedProcess[str]
) -> None:
    assert LEAKED_ARGV == [], "the token was seen in a process's argv"
    with CmdlineWatch() as watch:
        pass
    assert watch.found == []
    for output in OUTPUTS:
        assert TOKEN not in output
    journal = box.run("journalctl", "--no-pager", "--output=export").stdout
    assert "minimax-watcher" in journal and TOKEN not in journal
    unit = box.run("systemctl", "cat", "--no-pager", UNIT).stdout + box.run("systemctl", "show", UNIT).stdout
    assert "LoadCredential=useapi-token:/etc/minimax-watcher/token" in unit and TOKEN not in unit
    pid = box.show()["MainPID"]
    assert TOKEN.encode() not in box.path(f"/proc/{pid}/environ").read_bytes()


def test_uninstall_removes_the_unit_and_keeps_config_token_folders_and_sidecars(
    box: Container, installed: subprocess.CompletedProcess[str]
) -> None:
    image = f"{ALICE}/kept.png"
    box.write(image, png_bytes(40), mode=0o640, owner="nobody:minimax-drop")
    sidecar(box, image)
    result = service(box, "uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    kept = result.stdout.split("Kept:\n", 1)[1]
    for thing in (
        f"the config {CONFIG}",
        f"the token {TOKEN_FILE}",
        f"the folder {ALICE}",
        f"the folder {CAROL}",
    ):
        assert thing in kept, result.stdout
    assert box.show()["ActiveState"] == "inactive"
    assert box.run("systemctl", "show", "--property=LoadState", UNIT).stdout.strip() == "LoadState=not-found"
    assert not box.path(UNIT_PATH).exists() and not box.path(DROPIN).parent.exists()
    for inside in (
        CONFIG,
        TOKEN_FILE,
        image,
        image + ".json",
        f"{BOB}/first.png.json",
        f"{CAROL}/added.png.json",
    ):
        assert box.path(inside).exists(), f"uninstall removed {inside}"
    again = service(box, "uninstall")
    assert again.returncode == 0
    assert set(steps(again.stdout).values()) == {"unchanged"}, again.stdout
