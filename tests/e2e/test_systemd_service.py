"""The shipped unit under a real systemd: systemd as PID 1 in a systemd-nspawn container.

The container (tests/helpers/container.py) is the host's own root, read-only, booted with
`--volatile=overlay`. Into it go the unit from systemd/ unchanged, users and folders from
systemd/sysusers.conf and systemd/tmpfiles.conf, a venv at /opt/minimax-watcher holding the package from
this checkout, the token as a credential file, and the emulator as a second unit on the container's
private loopback. Then the checks of issue 4: active only after READY, uploads, reload, journal
priorities, the watchdog, and stop within 10 s. These are the manual steps of the README's "Run as a
service"; tests/e2e/test_service_install.py checks the one command that does them.

Skipped with a banner where the container cannot boot (MINIMAX_WATCHER_REQUIRE_SYSTEMD=1 makes that a
failure instead); it never passes without a container.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import TOKEN, wait_for
from tests.helpers.container import (
    EMULATOR_PORT,
    UNIT,
    Container,
    base_python,
    booted_container,
    copy_distributions,
    runtime_distributions,
    sidecar,
    start_emulator,
)
from tests.helpers.images import png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
PORT = EMULATOR_PORT
ACCOUNT = "123456"
DROP = "/srv/drop"
PREFIX = "/opt/minimax-watcher"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def build_venv(dest: Path) -> None:
    """A venv that works once mounted at /opt/minimax-watcher, without network or build tools.

    `pip install` would need PyPI (and setuptools >= 68 to build); this copies exactly the files the
    installed dependencies consist of, the package from this checkout, and writes the console script
    pip would write.
    """
    base = base_python()
    subprocess.run([base, "-m", "venv", "--without-pip", str(dest)], check=True)
    purelib = subprocess.run(
        [str(dest / "bin" / "python3"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    site = Path(purelib)
    copy_distributions(runtime_distributions(), site)
    shutil.copytree(REPO / "watcher", site / "watcher", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    script = dest / "bin" / "minimax-watcher"
    script.write_text(
        f"#!{PREFIX}/bin/python3\nimport sys\nfrom watcher.cli.main import main\n\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    # Bytecode now: /opt is read-only for the service, and compiling pydantic at every start is slow.
    subprocess.run([base, "-m", "compileall", "-q", "-j", "2", str(site)], check=True)


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def container(request: pytest.FixtureRequest) -> Iterator[Container]:
    def stage(workdir: Path) -> dict[Path, str]:
        build_venv(workdir / "venv")
        return {workdir / "venv": PREFIX}

    with booted_container(request, stage) as box:
        install(box)
        yield box


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
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "enable", UNIT)
    start_emulator(box, f"{PREFIX}/bin/minimax-watcher", TOKEN, ACCOUNT)


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
        assert state["StatusText"].startswith("1 folder watched"), state
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
