"""Logging: to journald with structured `MINIMAX_*` fields under systemd, to stderr otherwise.

Control characters in a record's arguments are escaped, then its whole text, traceback and fields go
through `watcher.redact`. Code attaches fields with `watcher.log_fields.say`. See docs/architecture.md,
'Telling'.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import struct
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

from watcher.log_fields import (
    _PATH_FIELDS,
    FIELDS_ATTRIBUTE,
    record_fields,
)
from watcher.redact import escape_control, has_control, redact

# syslog priorities, as sd-daemon(3) prefixes and the journal's PRIORITY= expect them.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "minimax-watcher"

# libsystemd asks for this much too; the kernel caps it at net.core.wmem_max, and a larger entry goes
# through a memfd.
_SEND_BUFFER = 8 * 1024 * 1024
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # Each line gets its prefix, so a multi-line traceback keeps its priority.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


class JournalHandler(logging.Handler):
    """Each record as one entry over journald's native protocol, with its `MINIMAX_*` fields.

    The entry is one datagram to the journal socket; one too large for a datagram goes as a sealed memfd
    passed with SCM_RIGHTS, as sd_journal_sendv(3) does. When the socket cannot take it (missing, refused,
    no memfd), the record is written to `stream` as a `<N>`-prefixed line instead: no line is lost.
    Every value sent, not only MESSAGE, passes through `redact`.
    """

    def __init__(self, stream: TextIO, socket_path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.setFormatter(logging.Formatter("%(message)s"))
        self._fallback = logging.StreamHandler(stream)
        self._fallback.setFormatter(JournalFormatter("%(message)s"))
        self._socket: socket.socket | None
        try:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError:
            self._socket = None  # e.g. RestrictAddressFamilies= without AF_UNIX: stderr it is
        else:
            try:
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
            except OSError:
                pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = self.entry(record)
        except Exception:
            self.handleError(record)
            return
        if not self._send(entry):
            self._fallback.emit(record)

    def entry(self, record: logging.LogRecord) -> bytes:
        """The record in the native protocol's encoding (what is sent, datagram or memfd)."""
        standard = {
            "MESSAGE": self.format(record),
            "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
            "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
        }
        parts = []
        for name, value in [*standard.items(), *record_fields(record).items()]:
            if value:  # a record made by hand may lack its function or file: no empty field then
                errors = "surrogateescape" if name in _PATH_FIELDS else "backslashreplace"
                parts.append(_field(name, redact(value).encode("utf-8", errors)))
        return b"".join(parts)

    def close(self) -> None:
        self.acquire()
        try:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
        finally:
            self.release()
        super().close()

    def _send(self, entry: bytes) -> bool:
        if self._socket is None:
            return False
        try:
            self._socket.sendto(entry, self.socket_path)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                return False
        return self._send_as_memfd(entry)

    def _send_as_memfd(self, entry: bytes) -> bool:
        """What does not fit a datagram goes as a sealed memfd: journald refuses a file it could see change."""
        assert self._socket is not None
        try:
            fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        except OSError:
            return False
        try:
            view = memoryview(entry)
            while view:
                view = view[os.write(fd, view) :]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            self._socket.sendmsg([], rights, 0, self.socket_path)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)


def _field(name: str, value: bytes) -> bytes:
    """`NAME=value\\n`, or, for a value holding a newline, the name, its 64-bit little-endian length and
    the value as is: the protocol's binary form, in which no value can end its field early."""
    key = name.encode("ascii")
    if b"\n" in value:
        return key + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return key + b"=" + value + b"\n"


class EscapeControlCharacters(logging.Filter):
    """File names may hold newlines or escape sequences; a log line must not be split or forged by one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_escaped_argument(a) for a in record.args)
        return True


def _escaped_argument(value: object) -> object:
    if isinstance(value, str):
        return escape_control(value) if has_control(value) else value
    if isinstance(value, int | float) or value is None:
        return value  # keeps %d and %.1f working; their text has no control characters
    # An exception or a path is rendered with %s; its text may hold a file name, so check that.
    try:
        text = str(value)
    except Exception:
        return value
    return escape_control(text) if has_control(text) else value


class RedactSecrets(logging.Filter):
    """The record's final text (message, traceback, stack) and its journal fields pass through `redact`,
    for every handler.

    The message is rendered here, once, and the record keeps only the result: a handler that formats it
    again cannot bring a secret back from the arguments.
    """

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # The handler would report the broken call with its arguments on stderr; report it here instead.
            message = f"{record.msg!r} (with arguments that do not fit it: {record.args!r})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if hasattr(record, FIELDS_ATTRIBUTE):
            setattr(record, FIELDS_ATTRIBUTE, {k: redact(v) for k, v in record_fields(record).items()})
        return True


def stderr_is_journal(env: Mapping[str, str] | None = None) -> bool:
    """True when stderr is the journal stream systemd connected (JOURNAL_STREAM=dev:inode)."""
    env = os.environ if env is None else env
    value = env.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{st.st_dev}" == dev and f"{st.st_ino}" == ino


def _stderr_is_socket() -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(sys.stderr.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def configure_logging(
    verbose: bool = False, env: Mapping[str, str] | None = None, journal_socket: str = JOURNAL_SOCKET
) -> None:
    handler: logging.Handler
    if stderr_is_journal(env) and _stderr_is_socket():
        handler = JournalHandler(sys.stderr, journal_socket)
    elif stderr_is_journal(env):
        # journald's stream is always a socket: a file that JOURNAL_STREAM names is not journald (a
        # wrapper kept the variable, or a test), and native entries would go to whatever journal this
        # host runs instead of where stderr goes. The prefixed lines are right for either.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    add_filters(handler)
    # No format uses them, and every record would look them up (a getpid system call included).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # urllib3 logs every new connection at DEBUG; keep it for --verbose only.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    # An uncaught exception's traceback is error text leaving the process too: it goes through the log.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def add_filters(handler: logging.Handler) -> None:
    """Escaping first, redaction last: redaction must see the text exactly as it will be written."""
    handler.addFilter(EscapeControlCharacters())
    handler.addFilter(RedactSecrets())


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    logging.getLogger("watcher").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("watcher").critical(
        "uncaught %s in %s", args.exc_type.__name__, name, exc_info=args.exc_value
    )
