"""Journal fields under the real journald, in the booted container of test_systemd_service.py.

A probe runs under a copy of the shipped unit (same sandbox: seccomp filter, address families, private
devices) with only its ExecStart changed: it configures logging as `minimax-watcher run` does and logs a
line with every MINIMAX_* field, a traceback, an entry too large for a datagram, and a registered secret
in every field. `journalctl -u <unit> MINIMAX_ACCOUNT=...` must find them, whole, with the secret gone.
The service itself must log over the native protocol (`_TRANSPORT=journal`, not the stream).

Skipped with test_systemd_service.py's banner where the container cannot boot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_systemd_service as service_tests
from tests.e2e.test_systemd_service import ACCOUNT, DROP, PREFIX, REPO, UNIT, Container
from tests.helpers import wait_for
from tests.helpers.images import png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# The container, booted and installed as test_systemd_service.py does it (one container per module).
container = service_tests.container
service = service_tests.service

PROBE_UNIT = "mmw-journal-probe.service"
PROBE_SCRIPT = "/usr/local/share/mmw-journal-probe.py"
FOLDER = f"{DROP}/alice"
FILE = f"{FOLDER}/probe cat.png"
FILE_ID = f"user:4242-minimax:{ACCOUNT}-file:987654321"
SECRET = "user:4242-probeSECRETinthejournal"

PROBE = f"""
import logging, signal, sys
from watcher.log_fields import fields
from watcher.report.logs import configure_logging
from watcher.redact import register_secret

configure_logging()
register_secret({SECRET!r})
log = logging.getLogger("watcher.probe")
log.info("%s: uploaded", {FILE!r}, extra=fields(file={FILE!r}, folder={FOLDER!r}, account={ACCOUNT!r},
         file_id={FILE_ID!r}, event="upload"))
try:
    raise ValueError("the probe's own error")
except ValueError:
    log.exception("%s: unexpected error", {FILE!r}, extra=fields(file={FILE!r}, account={ACCOUNT!r}, event="failure"))
log.warning("huge: %s", "x" * int(sys.argv[1]), extra=fields(file={FILE!r}, account={ACCOUNT!r}, event="retry"))
log.error("%s leaked?", {SECRET!r}, extra=fields(file="/d/{SECRET}.png", account={SECRET!r}, file_id={SECRET!r}))
log.info("probe done", extra=fields(account={ACCOUNT!r}, event="attention"))
# Alive until stopped: journald learns an entry's unit from its sender's cgroup, which must still exist.
signal.pause()
"""

# Lines of the shipped unit that make it the agent rather than a sandbox to run something in.
AGENT_ONLY = (
    "Type",
    "ExecStart",
    "ExecReload",
    "WatchdogSec",
    "LoadCredential",
    "Restart",
    "RestartPreventExitStatus",
)


def probe_unit(huge: int) -> str:
    lines = [
        line
        for line in (REPO / "systemd" / UNIT).read_text().splitlines()
        if line.partition("=")[0] not in AGENT_ONLY
    ]
    at = lines.index("[Service]") + 1
    lines[at:at] = ["Type=exec", f"ExecStart={PREFIX}/bin/python3 {PROBE_SCRIPT} {huge}", "Restart=no"]
    return "\n".join(lines) + "\n"


def entries(box: Container, *matches: str) -> list[dict[str, Any]]:
    # --all: journalctl's JSON shows a value over 4096 bytes as null without it.
    out = box.run("journalctl", "--no-pager", "--output=json", "--all", *matches, timeout=60).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def probe(container: Container) -> Iterator[int]:
    """The probe unit runs once for the module: each test counts the entries of that one run."""
    # Over twice net.core.wmem_max, the most a datagram can be: this entry must go as a memfd.
    huge = 2 * int(Path("/proc/sys/net/core/wmem_max").read_text()) + 4096
    container.write(PROBE_SCRIPT, PROBE)
    container.write(f"/etc/systemd/system/{PROBE_UNIT}", probe_unit(huge))
    container.run("systemctl", "daemon-reload")
    container.run("systemctl", "start", PROBE_UNIT, timeout=60)
    wait_for(
        lambda: entries(container, "-u", PROBE_UNIT, "MINIMAX_EVENT=attention"),
        20,
        "the probe's last line in the journal",
        interval=0.2,
    )
    yield huge
    container.run("systemctl", "stop", PROBE_UNIT, check=False)
    print(container.run("journalctl", "--no-pager", "-u", PROBE_UNIT, check=False).stdout)


def test_journalctl_finds_lines_by_their_fields(container: Container, probe: int) -> None:
    by_account = [e["MESSAGE"] for e in entries(container, "-u", PROBE_UNIT, f"MINIMAX_ACCOUNT={ACCOUNT}")]
    assert len(by_account) == 4, by_account
    assert by_account[0] == f"{FILE}: uploaded"
    assert by_account[1].startswith(f"{FILE}: unexpected error\nTraceback (most recent call last):\n")
    assert by_account[2].startswith("huge: xxx")
    assert by_account[3] == "probe done"
    uploaded = entries(container, "-u", PROBE_UNIT, f"MINIMAX_FILE={FILE}", "MINIMAX_EVENT=upload")
    assert len(uploaded) == 1, uploaded
    entry = uploaded[0]
    assert entry["MINIMAX_FILE_ID"] == FILE_ID
    assert entry["MINIMAX_FOLDER"] == f"{DROP}/alice"
    assert entry["PRIORITY"] == "6"
    assert entry["SYSLOG_IDENTIFIER"] == "minimax-watcher"
    assert entry["CODE_FILE"] == PROBE_SCRIPT and entry["CODE_FUNC"] == "<module>"
    assert entry["_TRANSPORT"] == "journal", "sent over the native protocol, not the stderr stream"


def test_a_traceback_is_one_entry_and_a_huge_one_arrives_whole(container: Container, probe: int) -> None:
    failure = entries(container, "-u", PROBE_UNIT, "MINIMAX_EVENT=failure")
    assert len(failure) == 1, failure
    message = failure[0]["MESSAGE"]
    assert message.endswith("ValueError: the probe's own error"), message
    assert failure[0]["PRIORITY"] == "3"
    huge = entries(container, "-u", PROBE_UNIT, "MINIMAX_EVENT=retry")
    assert len(huge) == 1, "the entry too large for a datagram arrived once (through a memfd)"
    assert huge[0]["MESSAGE"] == "huge: " + "x" * probe
    assert huge[0]["_TRANSPORT"] == "journal"


def test_a_registered_secret_reaches_no_field(container: Container, probe: int) -> None:
    # JSON shows a value as text unless it is not UTF-8; the probe's values all are.
    out = container.run(
        "journalctl", "--no-pager", "--output=json", "--all", "-u", PROBE_UNIT, timeout=60
    ).stdout
    assert "probe done" in out
    assert SECRET not in out and "probeSECRETinthejournal" not in out
    leaked = [e for e in entries(container, "-u", PROBE_UNIT, "PRIORITY=3") if "leaked?" in e["MESSAGE"]]
    assert len(leaked) == 1
    for name in ("MESSAGE", "MINIMAX_FILE", "MINIMAX_ACCOUNT", "MINIMAX_FILE_ID"):
        assert "<redacted>" in leaked[0][name], name


def test_the_service_logs_over_the_native_protocol(service: Container) -> None:
    pid = service.show()["MainPID"]
    lines = service.journal(f"_PID={pid}")
    assert lines, "the service logged nothing"
    for entry in lines:
        assert entry["_TRANSPORT"] == "journal", entry
        assert entry["SYSLOG_IDENTIFIER"] == "minimax-watcher"
        assert entry["CODE_FILE"].startswith(f"{PREFIX}/lib/"), entry
    # `-u` finds them: journald tied each entry to the unit.
    assert service.journal("-u", UNIT, f"_PID={pid}", "_TRANSPORT=journal")


def test_journalctl_finds_the_upload_line_of_a_file(service: Container) -> None:
    image = f"{DROP}/alice/fielded.png"
    service.write(image, png_bytes(11))
    sidecar = service_tests.sidecar(service, image)
    found = wait_for(
        lambda: entries(service, "-u", UNIT, f"MINIMAX_FILE={image}"), 10, "the upload line by its file"
    )
    assert any(e.get("MINIMAX_FILE_ID") == sidecar["fileID"] for e in found), found
    assert all(e.get("MINIMAX_ACCOUNT") == ACCOUNT for e in found), found
