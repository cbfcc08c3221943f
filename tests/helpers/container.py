"""A booted systemd in a systemd-nspawn container, for the tests of the service under the real systemd.

The container is the host's own root, bind-mounted read-only and booted with `--volatile=overlay`, so it
has this machine's systemd and Python and every write goes to a throw-away tmpfs. Commands run in it
through nsenter; its files are reached from the host through /proc/<its PID 1>/root.

Needs root, systemd-nspawn (package systemd-container, see .ci/install-system-packages) and a kernel
that lets it boot. Where it cannot, `booted_container` skips the module's tests with a banner saying so
on the terminal (MINIMAX_WATCHER_REQUIRE_SYSTEMD=1 makes that a failure instead); a test never passes
without a container.
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
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for

UNIT = "minimax-watcher.service"
EMULATOR_UNIT = "mmw-emulator.service"
EMULATOR_PORT = 8787
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUIRE_ENV = "MINIMAX_WATCHER_REQUIRE_SYSTEMD"
REPO = Path(__file__).resolve().parents[2]


class CannotBoot(Exception):
    """This machine cannot run the container (no root, no nspawn, the kernel refuses...)."""


# ---- what goes into a venv the service can run from ----------------------------------------------------


def base_python() -> str:
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


def runtime_distributions(*names: str) -> list[metadata.Distribution]:
    """The installed distributions the checkout's pyproject.toml depends on, transitively (extras left
    out), and `names` with theirs. Read from pyproject.toml, not from the editable install's metadata,
    which is as old as the last `pip install -e`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found: dict[str, metadata.Distribution] = {}
    todo = [*project["dependencies"], *names]
    while todo:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", todo.pop())
        if match is None:
            continue
        name = re.sub(r"[-_.]+", "-", match.group()).lower()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker does not apply here
        found[name] = dist
        todo += [requirement for requirement in dist.requires or [] if "extra ==" not in requirement]
    return list(found.values())


def copy_distributions(dists: Iterable[metadata.Distribution], site: Path) -> None:
    """Copy exactly the files the installed distributions consist of into the site-packages `site`.

    This is how the tests fill a venv without network or build tools; console scripts in bin/ and
    stale bytecode are left out.
    """
    for dist in dists:
        for file in dist.files or []:
            relative = Path(str(file))
            if relative.parts[0] == ".." or "__pycache__" in relative.parts:
                continue
            target = site / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)


# ---- the container --------------------------------------------------------------------------------------


class Container:
    """systemd as PID 1 in a booted nspawn container; commands run in it through nsenter."""

    def __init__(self, workdir: Path, binds: Mapping[Path, str]) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.log_path = workdir / "nspawn.log"
        self.binds = dict(binds)  # host folder -> where the container sees it, read-only
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
                *(f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()),
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
            # The container's PID 1's working directory, its /: `--wd=/` would be the host's.
            "--wd",
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


def sweep_stale_mounts() -> None:
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


@contextlib.contextmanager
def booted_container(
    request: pytest.FixtureRequest, stage: Callable[[Path], Mapping[Path, str]]
) -> Iterator[Container]:
    """A booted container for a test module; skipped (or failed, under REQUIRE_ENV=1) where it cannot be.

    `stage(workdir)` prepares what the container needs from the host, in a fresh work folder, and
    returns the folders to bind into it read-only (host path -> path inside).
    """
    sweep_stale_mounts()
    workdir = Path(tempfile.mkdtemp(prefix="mmw-nspawn-"))
    box = Container(workdir, {})
    try:
        try:
            box.binds = dict(stage(workdir))
            box.boot()
        except CannotBoot as exc:
            reason = f"this machine cannot boot systemd in a container: {exc}"
            _announce(request, reason)
            if os.environ.get(REQUIRE_ENV) == "1":
                pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)", pytrace=False)
            pytest.skip(reason)
        yield box
    finally:
        box.destroy()


def start_emulator(box: Container, command: str, token: str, account: str) -> None:
    """The API emulator as a unit on the container's private loopback, `command` being minimax-watcher."""
    box.write(
        f"/etc/systemd/system/{EMULATOR_UNIT}",
        "[Unit]\nDescription=useapi.net emulator for the test\n\n[Service]\n"
        f"Environment=USEAPI_TOKEN={token}\n"
        f"ExecStart={command} emulate --port {EMULATOR_PORT} --account {account}\n",
    )
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "start", EMULATOR_UNIT)
    python = Path(command).parent / "python3"
    wait_for(
        lambda: (
            box.run(
                str(python),
                "-c",
                f"import socket; socket.create_connection(('127.0.0.1', {EMULATOR_PORT}), 1)",
                check=False,
            ).returncode
            == 0
        ),
        20,
        "the emulator to listen in the container",
        interval=0.2,
    )


def sidecar(box: Container, inside: str, timeout: float = 20) -> dict[str, Any]:
    """The sidecar of the image at `inside`, once the service has written it."""

    def read() -> dict[str, Any] | None:
        try:
            return json.loads(box.path(inside + ".json").read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return None

    return wait_for(read, timeout, f"the sidecar of {inside}", interval=0.1)  # type: ignore[no-any-return]
