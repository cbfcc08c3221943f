"""Logging to stderr: journald-style `<N>` priority prefixes under systemd, timestamps otherwise."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

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
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and _has_control(a) for a in record.args
        ):
            record.args = tuple(_escape(a) if isinstance(a, str) else a for a in record.args)
        return True


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _escape(text: str) -> str:
    return "".join(c if ord(c) >= 32 and ord(c) != 127 else f"\\x{ord(c):02x}" for c in text)


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
    handler.addFilter(EscapeControlCharacters())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # urllib3 logs every new connection at DEBUG; keep it for --verbose only.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
