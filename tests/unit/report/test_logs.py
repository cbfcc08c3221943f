"""The journald handler, against a real AF_UNIX datagram socket standing in for journald.

The test side decodes what arrives with its own reading of the native protocol (systemd's
JOURNAL_NATIVE_PROTOCOL): `KEY=value` lines, the binary length-prefixed form for values holding a
newline, and an empty datagram carrying a sealed memfd for an entry too large for a datagram. The last
tests run a real interpreter whose stderr is a socket named by JOURNAL_STREAM, as systemd sets it up.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from watcher.log_fields import fields
from watcher.redact import REPLACEMENT, register_secret
from watcher.report.logs import SYSLOG_IDENTIFIER, JournalHandler, add_filters

REPO = Path(__file__).resolve().parents[3]
FIELD_NAME = re.compile(rb"[A-Z][A-Z0-9_]*")
ALL_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
FILE_ID = "user:4242-minimax:123456-file:987654321"
SECRET = "user:4242-journalSECRETtoken"


def decode(entry: bytes) -> dict[str, bytes]:
    """One native-protocol entry as {field: raw value}; fails on anything journald would not accept."""
    decoded: dict[str, bytes] = {}
    at = 0
    while at < len(entry):
        end = entry.index(b"\n", at)
        line = entry[at:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            at = end + 1
        else:
            name = line
            (length,) = struct.unpack("<Q", entry[end + 1 : end + 9])
            value = entry[end + 9 : end + 9 + length]
            assert len(value) == length, f"{name!r}: {length} bytes announced, {len(value)} there"
            assert entry[end + 9 + length : end + 10 + length] == b"\n", (
                f"{name!r}: no newline after the value"
            )
            at = end + 10 + length
        assert FIELD_NAME.fullmatch(name), f"not a field name journald accepts: {name!r}"
        assert name.decode() not in decoded, f"{name!r} twice in one entry"
        decoded[name.decode()] = value
    return decoded


@dataclass
class Received:
    raw: bytes  # the entry's bytes, from the datagram or from the memfd
    fields: dict[str, bytes]
    via_memfd: bool
    seals: int = 0

    def text(self, name: str) -> str:
        return self.fields[name].decode()


class FakeJournal:
    """A datagram socket bound to a path, as /run/systemd/journal/socket is."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(5)
        # Large enough for anything sent as a datagram (the kernel may give less; the sender copes).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)

    def receive(self) -> Received:
        data, fds, _, _ = socket.recv_fds(self.sock, 16 * 1024 * 1024, 1)
        if not fds:
            return Received(data, decode(data), via_memfd=False)
        assert data == b"", "an entry sent as a file comes with an empty datagram"
        (fd,) = fds
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            size = os.fstat(fd).st_size
            raw = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        return Received(raw, decode(raw), via_memfd=True, seals=seals)

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
            return True
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(5)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A socket path must fit in 108 bytes; pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="mmw-j-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def journal(short_dir: Path) -> Iterator[FakeJournal]:
    fake = FakeJournal(str(short_dir / "socket"))
    yield fake
    fake.close()


@dataclass
class Logged:
    log: logging.Logger
    handler: JournalHandler
    stderr: io.StringIO


def journal_logger(socket_path: str, *, filters: bool = True) -> Logged:
    stderr = io.StringIO()
    handler = JournalHandler(stderr, socket_path)
    if filters:
        add_filters(handler)
    log = logging.getLogger(f"test_logs.{id(handler)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return Logged(log, handler, stderr)


@pytest.fixture
def logged(journal: FakeJournal) -> Iterator[Logged]:
    result = journal_logger(journal.path)
    yield result
    result.handler.close()


# ---- what an entry holds --------------------------------------------------------------------------------


def test_a_record_is_one_entry_with_its_fields(journal: FakeJournal, logged: Logged) -> None:
    path = "/srv/drop/alice/cat.png"
    line = sys._getframe().f_lineno + 1
    logged.log.info("%s: uploaded", path, extra=fields(file=path, folder="/srv/drop/alice", account="123456",
                                                      file_id=FILE_ID, event="upload"))  # fmt: skip
    got = journal.receive()
    assert not got.via_memfd
    assert {name: got.text(name) for name in got.fields} == {
        "MESSAGE": f"{path}: uploaded",
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
        "CODE_FILE": __file__,
        "CODE_LINE": str(line),
        "CODE_FUNC": "test_a_record_is_one_entry_with_its_fields",
        "MINIMAX_FILE": path,
        "MINIMAX_FOLDER": "/srv/drop/alice",
        "MINIMAX_ACCOUNT": "123456",
        "MINIMAX_FILE_ID": FILE_ID,
        "MINIMAX_EVENT": "upload",
    }
    assert logged.stderr.getvalue() == "", "an entry the journal took is not also written to stderr"


def test_a_record_without_fields_carries_only_the_standard_ones(journal: FakeJournal, logged: Logged) -> None:
    logged.log.info("stopping")
    got = journal.receive()
    assert set(got.fields) == {
        "MESSAGE",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
    }


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, "7"),
        (logging.INFO, "6"),
        (logging.WARNING, "4"),
        (logging.ERROR, "3"),
        (logging.CRITICAL, "2"),
    ],
)
def test_levels_become_syslog_priorities(
    journal: FakeJournal, logged: Logged, level: int, priority: str
) -> None:
    logged.log.log(level, "something")
    assert journal.receive().text("PRIORITY") == priority


# ---- values the line form cannot hold -------------------------------------------------------------------


def test_a_traceback_is_one_entry_in_the_binary_form(journal: FakeJournal, logged: Logged) -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        logged.log.exception("%s: unexpected error", "/d/a.png", extra=fields(file="/d/a.png"))
    got = journal.receive()
    message = got.text("MESSAGE")
    assert message.startswith("/d/a.png: unexpected error\nTraceback (most recent call last):\n"), message
    assert message.endswith("ValueError: broken")
    # On the wire: the name alone on its line, then the length as 8 little-endian bytes.
    encoded = message.encode()
    assert b"\nMESSAGE\n" + struct.pack("<Q", len(encoded)) + encoded + b"\n" in b"\n" + got.raw
    assert got.text("PRIORITY") == "3"


def test_a_file_name_cannot_forge_a_field(journal: FakeJournal, logged: Logged) -> None:
    """A newline in a name is the binary form in a field, and escaped in MESSAGE, as on stderr."""
    evil = "/d/x\nMINIMAX_ACCOUNT=999999\nPRIORITY=0.png"
    logged.log.error("%s: cannot be uploaded", evil, extra=fields(file=evil, event="failure"))
    got = journal.receive()
    assert got.fields["MINIMAX_FILE"] == evil.encode(), "the field holds the real name, exactly"
    assert "MINIMAX_ACCOUNT" not in got.fields
    assert got.text("PRIORITY") == "3"
    assert got.text("MESSAGE") == "/d/x\\x0aMINIMAX_ACCOUNT=999999\\x0aPRIORITY=0.png: cannot be uploaded"


def test_a_name_that_is_not_utf8_is_sent_as_the_file_systems_bytes(
    journal: FakeJournal, logged: Logged
) -> None:
    name = os.fsdecode(b"/d/caf\xe9.png")  # what os.listdir gives for a Latin-1 name
    logged.log.info("%s: uploaded", name, extra=fields(file=name))
    got = journal.receive()
    assert got.fields["MINIMAX_FILE"] == b"/d/caf\xe9.png", "journalctl MINIMAX_FILE=<the real name> matches"
    got.fields["MESSAGE"].decode("utf-8")  # the message stays text journalctl shows as such


def test_an_entry_too_large_for_a_datagram_goes_as_a_sealed_memfd(
    journal: FakeJournal, logged: Logged
) -> None:
    # The kernel caps a datagram at twice net.core.wmem_max; this one is larger whatever the sender asks.
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    body = "x" * (2 * wmem_max + 4096)
    logged.log.warning("huge: %s", body, extra=fields(file="/d/a.png"))
    got = journal.receive()
    assert got.via_memfd
    assert got.seals & ALL_SEALS == ALL_SEALS, "journald takes only a memfd sealed against change"
    assert got.text("MESSAGE") == f"huge: {body}"
    assert got.text("MINIMAX_FILE") == "/d/a.png"
    assert logged.stderr.getvalue() == ""


# ---- redaction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", [True, False], ids=["with-the-filters", "handler-alone"])
def test_a_registered_secret_is_redacted_in_every_field(journal: FakeJournal, filters: bool) -> None:
    register_secret(SECRET)
    logged = journal_logger(journal.path, filters=filters)
    try:
        raise RuntimeError(f"Bearer {SECRET}")
    except RuntimeError:
        logged.log.exception(
            "%s failed",
            SECRET,
            extra=fields(
                file=f"/d/{SECRET}.png",
                folder=f"/d/{SECRET}",
                account=SECRET,
                file_id=f"id-{SECRET}",
            ),
        )
    logged.handler.close()
    got = journal.receive()
    assert SECRET.encode() not in got.raw
    assert b"journalSECRETtoken" not in got.raw
    for name in ("MESSAGE", "MINIMAX_FILE", "MINIMAX_FOLDER", "MINIMAX_ACCOUNT", "MINIMAX_FILE_ID"):
        assert REPLACEMENT in got.text(name), name
    assert "RuntimeError: Bearer <redacted>" in got.text("MESSAGE")


def test_a_secret_in_a_field_is_redacted_on_the_stderr_fallback_too(short_dir: Path) -> None:
    register_secret(SECRET)
    logged = journal_logger(str(short_dir / "missing"))
    logged.log.info("%s: uploaded", SECRET, extra=fields(file=SECRET))
    logged.handler.close()
    assert logged.stderr.getvalue() == f"<6>{REPLACEMENT}: uploaded\n"


# ---- when the journal cannot take it --------------------------------------------------------------------


def test_without_the_socket_lines_go_to_stderr_with_priority_prefixes(short_dir: Path) -> None:
    logged = journal_logger(str(short_dir / "missing"))
    logged.log.info("%s: uploaded", "/d/a.png", extra=fields(file="/d/a.png", event="upload"))
    try:
        raise ValueError("broken")
    except ValueError:
        logged.log.error("failed", exc_info=True)
    logged.handler.close()
    lines = logged.stderr.getvalue().splitlines()
    assert lines[0] == "<6>/d/a.png: uploaded"
    assert lines[1] == "<3>failed"
    assert lines[-1] == "<3>ValueError: broken"
    assert all(line.startswith("<3>") for line in lines[1:])


def test_a_socket_nobody_listens_on_falls_back_and_a_restarted_journal_gets_entries_again(
    short_dir: Path,
) -> None:
    """journald restarting leaves a dead socket, then binds a new one at the same path."""
    path = str(short_dir / "socket")
    dead = FakeJournal(path)
    dead.close()
    logged = journal_logger(path)
    logged.log.warning("while journald is down")
    assert logged.stderr.getvalue() == "<4>while journald is down\n"
    os.unlink(path)
    journal = FakeJournal(path)
    try:
        logged.log.warning("journald is back")
        assert journal.receive().text("MESSAGE") == "journald is back"
        assert logged.stderr.getvalue() == "<4>while journald is down\n"
    finally:
        logged.handler.close()
        journal.close()


def test_an_entry_too_large_for_a_datagram_falls_back_when_the_memfd_cannot_be_sent(short_dir: Path) -> None:
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    body = "y" * (2 * wmem_max + 4096)
    logged = journal_logger(str(short_dir / "missing"))
    logged.log.info("huge: %s", body)
    logged.handler.close()
    assert logged.stderr.getvalue() == f"<6>huge: {body}\n"


# ---- configure_logging in a real process ----------------------------------------------------------------

CHILD = """
import logging, sys
from watcher.log_fields import fields
from watcher.report.logs import configure_logging
configure_logging(journal_socket=sys.argv[1])
logging.getLogger("watcher.child").info("%s: uploaded", "/d/a.png", extra=fields(file="/d/a.png", account="123456"))
print(type(logging.getLogger().handlers[0]).__name__, file=sys.stdout, flush=True)
"""


def run_child(stderr_kind: str, journal_path: str, short_dir: Path) -> tuple[str, str]:
    """Run CHILD with stderr a socket or a file, JOURNAL_STREAM naming it or not; (handler, its stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONPATH"] = str(REPO)
    ours: socket.socket | None = None
    if stderr_kind == "file":
        stderr_file = (short_dir / "stderr.log").open("w+b")
        theirs = stderr_file.fileno()
    else:
        ours, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs = child_end.fileno()
    st = os.fstat(theirs)
    if stderr_kind != "unrelated":
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, journal_path],
        stderr=theirs,
        stdout=subprocess.PIPE,
        env=env,
        timeout=60,
        text=True,
        check=True,
    )
    if ours is not None:
        child_end.close()
        ours.settimeout(5)
        chunks = []
        while chunk := ours.recv(65536):
            chunks.append(chunk)
        ours.close()
        written = b"".join(chunks).decode()
    else:
        stderr_file.seek(0)
        written = stderr_file.read().decode()
        stderr_file.close()
    return result.stdout.strip(), written


def test_under_journald_a_process_sends_entries_with_fields(journal: FakeJournal, short_dir: Path) -> None:
    handler, stderr = run_child("journal-socket", journal.path, short_dir)
    assert handler == "JournalHandler"
    got = journal.receive()
    assert got.text("MESSAGE") == "/d/a.png: uploaded"
    assert got.text("MINIMAX_ACCOUNT") == "123456"
    assert got.text("MINIMAX_FILE") == "/d/a.png"
    assert stderr == ""


def test_under_journald_without_its_socket_a_process_writes_prefixed_lines(short_dir: Path) -> None:
    handler, stderr = run_child("journal-socket", str(short_dir / "missing"), short_dir)
    assert handler == "JournalHandler"
    assert stderr == "<6>/d/a.png: uploaded\n"


@pytest.mark.parametrize("stderr_kind", ["file", "unrelated"])
def test_a_stderr_that_is_not_the_journal_socket_gets_lines_as_before(
    journal: FakeJournal, short_dir: Path, stderr_kind: str
) -> None:
    """A file JOURNAL_STREAM names gets prefixed lines; a stderr it does not name, timestamped ones."""
    handler, stderr = run_child(stderr_kind, journal.path, short_dir)
    assert handler == "StreamHandler"
    assert not journal.pending(), "nothing is sent to the journal socket"
    if stderr_kind == "file":
        assert stderr == "<6>/d/a.png: uploaded\n"
    else:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    /d/a\.png: uploaded\n", stderr), (
            stderr
        )
    assert "MINIMAX" not in stderr and "123456" not in stderr, "the fields stay out of stderr lines"


def test_the_stderr_formats_ignore_the_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    add_filters(handler)
    log = logging.getLogger("test_logs.plain")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    log.info("%s: uploaded", "/d/a.png", extra=fields(file="/d/a.png", account="123456", event="upload"))
    log.info("%s: uploaded", "/d/a.png")
    log.handlers[:] = []
    first, second = stream.getvalue().splitlines()
    assert first == second == "INFO /d/a.png: uploaded"


def test_only_the_minimax_fields_are_sent() -> None:
    """A field attached by hand under another name (a trusted `_PID`, a second MESSAGE) is not sent."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None, func="f")
    record.minimax_fields = {
        "MINIMAX_FILE": "/d/a.png",
        "_PID": "1",
        "MESSAGE": "forged",
        "MINIMAX_ACCOUNT": 5,
    }
    handler = JournalHandler(io.StringIO(), "/nonexistent")
    try:
        entry = decode(handler.entry(record))
    finally:
        handler.close()
    assert set(entry) == {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
                          "MINIMAX_FILE"}  # fmt: skip
    assert entry["MESSAGE"] == b"m"
