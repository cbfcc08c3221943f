"""The shipped unit under a real systemd: systemd as PID 1 in a systemd-nspawn container.

The container is the host's own root, bind-mounted read-only and booted with `--volatile=overlay`, so it
has this machine's systemd and Python and every write goes to a throw-away tmpfs. Into it go the unit
from systemd/ unchanged, users and folders from systemd/sysusers.conf and systemd/tmpfiles.conf, a venv
at /opt/minimax-watcher holding the package from this checkout, the token as a credential file, and the
emulator as a second unit on the container's private loopback. Then the checks of issue 4: active only
after READY, uploads, reload, journal priorities, the watchdog, and stop within 10 s.

Needs root, systemd-nspawn (package systemd-container, see .ci/install-system-packages) and a kernel
that lets it boot. Where it cannot, the test is skipped with a banner saying so on the terminal (set
MINIMAX_WATCHER_REQUIRE_SYSTEMD=1 to make that a failure instead); it never passes without a container.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import TOKEN, wait_for
from tests.helpers.images import png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
UNIT = "minimax-watcher.service"
EMULATOR_UNIT = "mmw-emulator.service"
PORT = 8787
ACCOUNT = "123456"
DROP = "/srv/drop"
PREFIX = "/opt/minimax-watcher"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUIRE_ENV = "MINIMAX_WATCHER_REQUIRE_SYSTEMD"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


class CannotBoot(Exception):
    """This machine cannot run the container (no root, no nspawn, the kernel refuses...)."""


# ---- the package, installed the way docs/service.md says, into a venv for /opt/minimax-watcher ----------


def _base_python() -> str:
    """An interpreter of this Python version that the hardened unit can see (not under /root, /home)."""
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable))]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates += [f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for candidate in candidates:
        hidden = candidate.startswith(("/root/", "/home/", "/run/user/", "/tmp/", "/var/tmp/"))
        if not hidden and os.access(candidate, os.X_OK):
            return candidate
    raise CannotBoot(
        f"no {version} outside /root and /home for the service to run (ProtectHome= hides those); "
        f"install Debian's {version} (apt-get install {version})"
    )


def _runtime_distributions() -> list[metadata.Distribution]:
    """minimax-watcher's installed dependencies, transitively (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    todo = ["minimax-watcher"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker does not apply here
        found[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
                if match:
                    todo.append(match.group())
    del found["minimax-watcher"]  # the checkout's own code is copied below, not the editable install
    return list(found.values())


def build_venv(dest: Path) -> None:
    """A venv that works once mounted at /opt/minimax-watcher, without network or build tools.

    `pip install` would need PyPI (and setuptools >= 68 to build); this copies exactly the files the
    installed dependencies consist of, the package from this checkout, and writes the console script
    pip would write.
    """
    base = _base_python()
    subprocess.run([base, "-m", "venv", "--without-pip", str(dest)], check=True)
    purelib = subprocess.run(
        [str(dest / "bin" / "python3"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    site = Path(purelib)
    for dist in _runtime_distributions():
        for file in dist.files or []:
            relative = Path(str(file))
            if relative.parts[0] == ".." or "__pycache__" in relative.parts:
                continue  # console scripts in bin/ and stale bytecode
            target = site / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)
    shutil.copytree(REPO / "watcher", site / "watcher", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    script = dest / "bin" / "minimax-watcher"
    script.write_text(
        f"#!{PREFIX}/bin/python3\nimport sys\nfrom watcher.cli import main\n\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    # Bytecode now: /opt is read-only for the service, and compiling pydantic at every start is slow.
    subprocess.run([base, "-m", "compileall", "-q", "-j", "2", str(site)], check=True)


# ---- the container --------------------------------------------------------------------------------------


class Container:
    """systemd as PID 1 in a booted nspawn container; commands run in it through nsenter."""

    def __init__(self, workdir: Path, venv: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.log_path = workdir / "nspawn.log"
        self.venv = venv
        self.name = f"mmw-{os.getpid()}-{secrets.token_hex(3)}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self.mounted = False

    # -- lifecycle

    def boot(self, timeout: float = 90.0) -> None:
        if os.geteuid() != 0:
            raise CannotBoot("not root: systemd-nspawn and bind mounts need root")
        for tool in ("systemd-nspawn", "nsenter", "mount", "umount"):
            if shutil.which(tool) is None:
                raise CannotBoot(f"{tool} is not installed (run .ci/install-system-packages)")
        self.root.mkdir()
        (self.workdir / "owner.pid").write_text(str(os.getpid()))
        self._host("mount", "--bind", "/", str(self.root))
        self.mounted = True
        self._host("mount", "-o", "remount,bind,ro", str(self.root))
        if os.access(self.root / "etc", os.W_OK) or not _is_readonly_mount(self.root):
            raise CannotBoot(f"{self.root} did not become a read-only bind mount of /")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                f"--directory={self.root}",
                f"--machine={self.name}",
                "--volatile=overlay",
                "--register=no",
                "--keep-unit",
                "--link-journal=no",
                "--private-network",
                "--console=read-only",
                f"--bind-ro={self.venv}:{PREFIX}",
                "--boot",
                # Only the base system: no getty, no site services; ours are started by hand.
                "systemd.unit=basic.target",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        self.init_pid = self._wait_init(deadline)
        state = ""
        while time.monotonic() < deadline:
            self._check_nspawn_alive()
            result = self.run("systemctl", "is-system-running", check=False, timeout=10)
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise CannotBoot(f"the container did not finish booting in {timeout:.0f} s (state {state!r})")

    def _wait_init(self, deadline: float) -> int:
        assert self.proc is not None
        while time.monotonic() < deadline:
            self._check_nspawn_alive()
            for child in _children(self.proc.pid):
                try:
                    comm = Path(f"/proc/{child}/comm").read_text().strip()
                except OSError:
                    continue
                if comm == "systemd":
                    return child
            time.sleep(0.05)
        raise CannotBoot("systemd never started as the container's PID 1")

    def _check_nspawn_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise CannotBoot(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.boot_log()}")

    def boot_log(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()[-40:])

    def destroy(self) -> None:
        """Power the container off (killing it if it does not), then unmount and remove everything."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                # nspawn turns SIGTERM into SIGRTMIN+3 for the container's systemd: a clean poweroff.
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    if self.init_pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self.init_pid, signal.SIGKILL)  # takes the whole PID namespace
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
        finally:
            if self.mounted:
                _unmount(self.root)
                self.mounted = False
            _remove_workdir(self.workdir)

    # -- commands inside

    def run(
        self, *args: str, check: bool = True, timeout: float = 30, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "nsenter",
            f"--target={self.init_pid}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--root",
            "--wd=/",
            "--",
            "env",
            "-i",
            f"PATH={CONTAINER_PATH}",
            "LANG=C.UTF-8",
            "SYSTEMD_COLORS=0",
            "SYSTEMD_PAGER=",
            *args,
        ]
        result = subprocess.run(
            command,
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container, {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def path(self, inside: str) -> Path:
        """A path in the container's file system, as the host reaches it."""
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str | bytes, mode: int = 0o644, owner: str = "root:root") -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            text = text.encode()
        # Written beside and renamed in, as a careful writer would, so the agent sees a finished file.
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(text)
        tmp.chmod(mode)
        os.replace(tmp, target)
        self.run("chown", owner, inside)

    def show(self, unit: str = UNIT) -> dict[str, str]:
        properties = [
            "ActiveState",
            "SubState",
            "MainPID",
            "StatusText",
            "NRestarts",
            "Result",
            "ExecMainCode",
            "ExecMainStatus",
        ]
        out = self.run("systemctl", "show", *(f"--property={p}" for p in properties), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        out = self.run("journalctl", "--no-pager", "--output=json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def unit_log(self) -> str:
        return self.run("journalctl", "--no-pager", "-u", UNIT, "-u", EMULATOR_UNIT, check=False).stdout

    # -- host side

    @staticmethod
    def _host(*args: str) -> None:
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            raise CannotBoot(f"{' '.join(args)} failed: {result.stderr.strip()}")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _is_readonly_mount(path: Path) -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return "ro" in fields[5].split(",")
    return False


def _unmount(path: Path) -> None:
    for _ in range(50):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def _remove_workdir(workdir: Path) -> None:
    """Remove a work folder, unless / is still mounted in it: never delete through that mount."""
    if os.path.ismount(workdir / "root"):
        print(f"WARNING: {workdir}/root is still mounted; leaving {workdir} in place", file=sys.stderr)
        return
    shutil.rmtree(workdir, ignore_errors=True)


def _sweep_stale_mounts() -> None:
    """Unmount roots left behind by earlier runs that were killed before their cleanup could run."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        match = re.fullmatch(r"(/tmp/mmw-nspawn-[^/]+)/root", target)
        if not match:
            continue
        try:
            owner = int(Path(match.group(1), "owner.pid").read_text())
            os.kill(owner, 0)
            continue  # its run is still going
        except (OSError, ValueError):
            pass
        _unmount(Path(target))
        _remove_workdir(Path(match.group(1)))


def _announce(request: pytest.FixtureRequest, reason: str) -> None:
    banner = "!" * 100
    text = f"\n{banner}\nREAL-SYSTEMD TEST NOT RUN: {reason}\n{banner}\n"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(text, red=True, bold=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print(text, file=sys.stderr, flush=True)


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def container(request: pytest.FixtureRequest) -> Iterator[Container]:
    _sweep_stale_mounts()
    workdir = Path(tempfile.mkdtemp(prefix="mmw-nspawn-"))
    venv = workdir / "venv"
    box = Container(workdir, venv)
    try:
        try:
            build_venv(venv)
            box.boot()
        except CannotBoot as exc:
            reason = f"this machine cannot boot systemd in a container: {exc}"
            _announce(request, reason)
            if os.environ.get(REQUIRE_ENV) == "1":
                pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)", pytrace=False)
            pytest.skip(reason)
        install(box)
        yield box
    finally:
        box.destroy()


def config_yaml(*folders: str) -> str:
    return yaml.safe_dump(
        {
            # localhost, not 127.0.0.1: name resolution must work under the unit's sandbox too.
            "api": {"base_url": f"http://localhost:{PORT}/v1/minimax"},
            "settle_seconds": 0.5,
            "folders": [{"path": f"{DROP}/{name}", "account": ACCOUNT} for name in folders],
        }
    )


def install(box: Container) -> None:
    """What docs/service.md tells an administrator to do, done in the container."""
    box.write("/etc/sysusers.d/minimax-watcher.conf", (REPO / "systemd/sysusers.conf").read_text())
    created = box.run("systemd-sysusers")
    assert all(line.startswith("Creating ") for line in created.stderr.splitlines()), created.stderr
    box.run("install", "-d", "-o", "root", "-g", "minimax-drop", "-m", "2775", f"{DROP}/alice")
    box.write(
        "/etc/minimax-watcher/config.yaml", config_yaml("alice"), mode=0o640, owner="root:minimax-watcher"
    )
    box.write("/etc/tmpfiles.d/minimax-watcher.conf", (REPO / "systemd/tmpfiles.conf").read_text())
    tmpfiles = box.run("systemd-tmpfiles", "--create", "/etc/tmpfiles.d/minimax-watcher.conf")
    assert not tmpfiles.stderr, tmpfiles.stderr
    box.write(f"/etc/systemd/system/{UNIT}", (REPO / "systemd" / UNIT).read_text())
    box.write(
        f"/etc/systemd/system/{EMULATOR_UNIT}",
        "[Unit]\nDescription=useapi.net emulator for the test\n\n[Service]\n"
        f"Environment=USEAPI_TOKEN={TOKEN}\n"
        f"ExecStart={PREFIX}/bin/minimax-watcher emulate --port {PORT} --account {ACCOUNT}\n",
    )
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "enable", UNIT)
    box.run("systemctl", "start", EMULATOR_UNIT)
    wait_for(
        lambda: (
            box.run(
                f"{PREFIX}/bin/python3",
                "-c",
                f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 1)",
                check=False,
            ).returncode
            == 0
        ),
        20,
        "the emulator to listen in the container",
        interval=0.2,
    )


@pytest.fixture
def service(container: Container) -> Iterator[Container]:
    """The service running with the token in place; on failure, its journal goes into the report."""
    container.write("/etc/minimax-watcher/token", TOKEN + "\n", mode=0o600)
    if container.show()["ActiveState"] != "active":
        container.run("systemctl", "reset-failed", UNIT, check=False)
        container.run("systemctl", "start", UNIT, timeout=60)
    yield container
    # Shown by pytest only when the test failed.
    print(container.unit_log())


def sidecar(box: Container, inside: str, timeout: float = 20) -> dict[str, Any]:
    def read() -> dict[str, Any] | None:
        try:
            return json.loads(box.path(inside + ".json").read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return None

    return wait_for(read, timeout, f"the sidecar of {inside}", interval=0.1)  # type: ignore[no-any-return]


# ---- the checks -----------------------------------------------------------------------------------------


def test_unit_is_enabled_and_runs_sandboxed_as_the_service_user(service: Container) -> None:
    assert service.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    pid = service.show()["MainPID"]
    status = service.path(f"/proc/{pid}/status").read_text()

    def field(name: str) -> str:
        match = re.search(rf"^{name}:\s+(\S+)", status, re.M)
        assert match is not None, f"no {name} in /proc/{pid}/status"
        return match.group(1)

    assert service.run("id", "-nu", field("Uid")).stdout.strip() == "minimax-watcher"
    assert int(field("CapEff"), 16) == 0, "the service must run without capabilities"
    assert field("NoNewPrivs") == "1"
    assert field("Seccomp") == "2", "SystemCallFilter= is not in force"


def test_becomes_active_only_after_ready(container: Container) -> None:
    box = container
    box.write("/etc/minimax-watcher/token", TOKEN + "\n", mode=0o600)
    box.run("systemctl", "stop", UNIT)
    for _attempt in range(3):
        box.run("systemctl", "start", "--no-block", UNIT)

        def forked() -> dict[str, str] | None:
            state = box.show()
            return state if state["MainPID"] != "0" else None

        pid = wait_for(forked, 30, "the service's main process")["MainPID"]
        box.run("kill", "-STOP", pid)
        state = box.show()
        if state["ActiveState"] == "active":
            box.run("kill", "-CONT", pid)
            box.run("systemctl", "stop", UNIT)
            continue  # READY=1 beat the freeze; try again
        # Frozen before READY=1: however long we look, systemd keeps it in the start phase.
        assert (state["ActiveState"], state["SubState"]) == ("activating", "start"), state
        look_until = time.monotonic() + 2.0
        while time.monotonic() < look_until:
            state = box.show()
            assert state["ActiveState"] == "activating", f"active without READY=1: {state}"
            time.sleep(0.1)
        box.run("kill", "-CONT", pid)
        state = wait_for(
            lambda: (s := box.show())["ActiveState"] == "active" and s, 30, "the service to become active"
        )
        # READY=1 came with the first STATUS=.
        assert state["StatusText"].startswith("1 folders watched"), state
        return
    pytest.fail("the agent sent READY=1 before it could be frozen, three times in a row")


def test_dropped_image_gets_its_sidecar_through_the_emulator(service: Container) -> None:
    image = f"{DROP}/alice/cat.png"
    data = png_bytes(7)
    # Readable by the service only through the drop group, as a producer's file would be.
    service.write(image, data, mode=0o640, owner="nobody:minimax-drop")
    result = sidecar(service, image)
    assert re.fullmatch(rf"user:\d+-minimax:{ACCOUNT}-file:\d+", result["fileID"]), result
    assert result["size"] == len(data)
    # Written by the service user, readable by the drop group (setgid folder, UMask=0027), no one else.
    owner = service.run("stat", "-c", "%U:%G %a", image + ".json").stdout.split()
    assert owner == ["minimax-watcher:minimax-drop", "640"], owner
    # The token came from the credential, and never reached the journal.
    log = service.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT).stdout
    assert "token from systemd credential useapi-token" in log
    assert TOKEN not in log


def test_reload_watches_a_folder_added_to_the_config(service: Container) -> None:
    box = service
    before = box.show()
    box.run("install", "-d", "-o", "root", "-g", "minimax-drop", "-m", "2775", f"{DROP}/bob")
    box.write(
        "/etc/minimax-watcher/config.yaml",
        config_yaml("alice", "bob"),
        mode=0o640,
        owner="root:minimax-watcher",
    )
    box.run("systemctl", "reload", UNIT)

    def reloaded() -> dict[str, str] | None:
        state = box.show()
        return state if state["StatusText"].startswith("2 folders watched") else None

    state = wait_for(reloaded, 20, "STATUS= to count the added folder", interval=0.1)
    assert state["MainPID"] == before["MainPID"], "reload must not restart the process"
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    image = f"{DROP}/bob/dog.png"
    box.write(image, png_bytes(8))
    assert sidecar(box, image)["file"] == "dog.png"
    log = box.run("journalctl", "--no-pager", "-o", "cat", f"_PID={state['MainPID']}").stdout
    assert f"watching {DROP}/bob" in log


def test_journal_priorities_only_errors_at_err(service: Container) -> None:
    box = service
    pid = box.show()["MainPID"]
    box.write(f"{DROP}/alice/broken.png", b"this is not an image, whatever its name says\n")
    wait_for(
        lambda: box.path(f"{DROP}/alice/broken.png.error.json").exists(), 20, "the error record", interval=0.1
    )

    def journal(priority: str) -> list[dict[str, Any]]:
        return box.journal(f"_PID={pid}", "--priority", priority)

    wait_for(
        lambda: any("broken.png" in e["MESSAGE"] for e in journal("err")), 10, "the error in the journal"
    )
    everything = journal("debug")
    errors = journal("err")
    # -p err gives exactly the agent's error lines, which are the ones about the broken file.
    assert [e["MESSAGE"] for e in errors] == [e["MESSAGE"] for e in everything if e["PRIORITY"] == "3"]
    assert errors and all("broken.png" in e["MESSAGE"] for e in errors), errors
    info = [e["MESSAGE"] for e in everything if e["PRIORITY"] == "6"]
    assert any(m.startswith(f"watching {DROP}/alice") for m in info), info
    for entry in everything:
        message = entry["MESSAGE"]
        assert not re.match(r"<\d>", message), f"priority prefix not parsed by journald: {message!r}"
        assert not TIMESTAMP.search(message), f"timestamp in a journald line: {message!r}"


def test_state_directory_keeps_what_a_folder_refused(service: Container) -> None:
    box = service
    folder = f"{DROP}/alice"
    box.run("chmod", "g-w", folder)  # the service can still read here, but no longer write
    try:
        box.write(f"{folder}/refused.png", png_bytes(10))
        journal = box.path("/var/lib/minimax-watcher/unwritten-sidecars.jsonl")

        def saved() -> list[str] | None:
            try:
                lines = [json.loads(line) for line in journal.read_text().splitlines()]
            except (FileNotFoundError, ValueError):
                return None
            return [str(line.get("add")) for line in lines] or None

        state = wait_for(saved, 20, "the state journal in StateDirectory=", interval=0.1)
        assert f"{folder}/refused.png" in state, state
        owner = box.run("stat", "-c", "%U %a", "/var/lib/minimax-watcher").stdout.split()
        assert owner == ["minimax-watcher", "700"], owner
    finally:
        box.run("chmod", "g+w", folder)


def test_watchdog_restarts_a_frozen_process(service: Container) -> None:
    box = service
    dropin = f"/etc/systemd/system/{UNIT}.d/zz-test-watchdog.conf"
    box.write(dropin, "[Service]\nWatchdogSec=3s\nRestartSec=1s\n")
    try:
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "restart", UNIT, timeout=60)
        state = box.show()
        pid, restarts = state["MainPID"], int(state["NRestarts"])
        # Alive, it pings (every 1.5 s): two watchdog periods pass without a restart.
        look_until = time.monotonic() + 6.0
        while time.monotonic() < look_until:
            now = box.show()
            assert (now["MainPID"], now["ActiveState"]) == (pid, "active"), now
            time.sleep(0.2)
        box.run("kill", "-STOP", pid)

        def restarted() -> dict[str, str] | None:
            now = box.show()
            if int(now["NRestarts"]) > restarts and now["ActiveState"] == "active" and now["MainPID"] != pid:
                return now
            return None

        wait_for(restarted, 30, "systemd's watchdog to restart the frozen agent", interval=0.2)
        log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT).stdout
        assert f"{UNIT}: Watchdog timeout" in log
    finally:
        box.run("rm", "-f", dropin)
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "restart", UNIT, timeout=60)


def emulator_control(box: Container, method: str, path: str, body: Any = None) -> Any:
    """Talk to the emulator's control endpoints, from inside the container's network."""
    script = (
        "import json, sys, urllib.request\n"
        "body = sys.stdin.read().encode() or None\n"
        f"request = urllib.request.Request('http://127.0.0.1:{PORT}{path}', data=body, method='{method}',"
        " headers={'Content-Type': 'application/json'})\n"
        "print(urllib.request.urlopen(request, timeout=5).read().decode())\n"
    )
    data = json.dumps(body).encode() if body is not None else b""
    out = box.run(f"{PREFIX}/bin/python3", "-c", script, input=data).stdout
    return json.loads(out) if out.strip() else None


def test_stop_completes_within_ten_seconds_even_mid_upload(service: Container) -> None:
    box = service
    # The emulator holds the next upload's answer for 15 s; the fault leaves its queue when the upload
    # arrives, which is how we know the upload is in flight.
    emulator_control(box, "POST", "/_emulator/faults", {"kind": "slow", "delay": 15})
    image = f"{DROP}/alice/slow.png"
    box.write(image, png_bytes(9))
    wait_for(
        lambda: emulator_control(box, "GET", "/_emulator/faults") == [],
        20,
        "the upload to reach the emulator",
        interval=0.1,
    )
    started = time.monotonic()
    box.run("systemctl", "stop", UNIT, timeout=30)
    elapsed = time.monotonic() - started
    state = box.show()
    assert elapsed < 10, f"systemctl stop took {elapsed:.1f} s"
    assert state["ActiveState"] == "inactive", state
    # It exited by itself, cleanly, rather than being killed at TimeoutStopSec=.
    assert (state["ExecMainCode"], state["ExecMainStatus"], state["Result"]) == ("1", "0", "success"), state
    # The upload cut short left no sidecar, and is redone at the next start.
    assert not box.path(image + ".json").exists()
    box.run("systemctl", "start", UNIT, timeout=60)
    assert sidecar(box, image)["file"] == "slow.png"


def test_config_errors_stop_it_instead_of_restarting_it(container: Container) -> None:
    box = container
    dropin = f"/etc/systemd/system/{UNIT}.d/zz-test-restart.conf"
    box.write(dropin, "[Service]\nRestartSec=500ms\n")
    box.run("systemctl", "daemon-reload")
    config = box.path("/etc/minimax-watcher/config.yaml").read_text()

    def fails_and_stays_failed(status: str) -> None:
        box.run("systemctl", "stop", UNIT)
        box.run("systemctl", "reset-failed", UNIT, check=False)
        box.run("systemctl", "start", "--no-block", UNIT)
        state = wait_for(
            lambda: (s := box.show())["ActiveState"] == "failed" and s, 30, "the unit to fail", interval=0.2
        )
        assert state["ExecMainStatus"] == status, state
        # RestartPreventExitStatus=: it stays failed instead of restarting every RestartSec.
        look_until = time.monotonic() + 3.0
        while time.monotonic() < look_until:
            now = box.show()
            assert (now["ActiveState"], now["NRestarts"]) == ("failed", "0"), now
            time.sleep(0.2)

    try:
        # 78 (EX_CONFIG): the agent refuses its config.
        box.write(
            "/etc/minimax-watcher/config.yaml",
            config.replace("settle_seconds", "settle_secs"),
            mode=0o640,
            owner="root:minimax-watcher",
        )
        fails_and_stays_failed("78")
        errors = box.run("journalctl", "--no-pager", "-o", "cat", "-p", "err", "-u", UNIT).stdout
        assert "settle_secs" in errors
        # 243 (EXIT_CREDENTIALS): systemd cannot load the token file.
        box.write("/etc/minimax-watcher/config.yaml", config, mode=0o640, owner="root:minimax-watcher")
        box.run("rm", "-f", "/etc/minimax-watcher/token")
        fails_and_stays_failed("243")
    finally:
        box.run("rm", "-f", dropin)
        box.run("systemctl", "daemon-reload")
