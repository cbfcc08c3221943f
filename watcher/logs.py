"""Logging to stderr: journald-style `<N>` priority prefixes under systemd, timestamps otherwise.

Every record passes two filters on its way to the handler: control characters in its arguments are
escaped (a file name must not split or forge a log line), then the whole rendered text, traceback
included, goes through `watcher.redact.redact`, so a registered secret never reaches the log.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType

from watcher.redact import escape_control, has_control, redact

# syslog priorities, as sd-daemon(3) prefixes expect them.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # Each line gets its prefix, so a multi-line traceback keeps its priority.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


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
    """The record's final text (message, traceback, stack) passes through `redact`, for every handler.

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


def configure_logging(verbose: bool = False, env: Mapping[str, str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal(env):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    add_filters(handler)
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
