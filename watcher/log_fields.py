"""The journal fields a log line may carry (`fields()`, `say()`), apart from the handler that sends them.

Pure, so that core can attach fields without importing `watcher.report.logs`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Literal

# What a log call may attach, by the journal field it becomes. The events are those of the hooks
# (SPEC §6b: upload, failure, attention, video) plus `retry`, so MINIMAX_EVENT means the same in both places.
Event = Literal["upload", "failure", "retry", "attention", "video"]
FIELDS_ATTRIBUTE = "minimax_fields"
FILE, FOLDER, ACCOUNT, FILE_ID, EVENT = (
    "MINIMAX_FILE",
    "MINIMAX_FOLDER",
    "MINIMAX_ACCOUNT",
    "MINIMAX_FILE_ID",
    "MINIMAX_EVENT",
)
_FIELD_NAMES = frozenset({FILE, FOLDER, ACCOUNT, FILE_ID, EVENT})
# Paths go to the journal as the file system's bytes, so a match on the real name finds them.
_PATH_FIELDS = frozenset({FILE, FOLDER})


def fields(
    *,
    file: str | os.PathLike[str] | None = None,
    folder: str | os.PathLike[str] | None = None,
    account: str | None = None,
    file_id: str | None = None,
    event: Event | None = None,
) -> dict[str, dict[str, str]]:
    """The `extra=` of a log call that carries journal fields; empty values are left out.

    `account` is the folder's configured account (None or "" for the token's only account: no field).
    Only the journal handler reads them; the stderr formats do not show them.
    """
    named = {FILE: file, FOLDER: folder, ACCOUNT: account, FILE_ID: file_id, EVENT: event}
    return {FIELDS_ATTRIBUTE: {name: os.fspath(value) for name, value in named.items() if value}}


def account_shown(account: str | None) -> str:
    """A folder's account as every log line names it: `account=123456`, or "the token's only account"
    for a folder without one (the API then takes the token's only account)."""
    return f"account={account}" if account else "the token's only account"


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    """The journal fields `fields()` attached to `record` ({} when none)."""
    attached = getattr(record, FIELDS_ATTRIBUTE, None)
    if not isinstance(attached, Mapping):
        return {}
    return {k: v for k, v in attached.items() if k in _FIELD_NAMES and isinstance(v, str)}


def say(
    emit: Callable[..., None],
    msg: str,
    *args: object,
    file: str | os.PathLike[str] | None = None,
    folder: str | os.PathLike[str] | None = None,
    account: str | None = None,
    file_id: str | None = None,
    event: Event | None = None,
) -> None:
    """Log `msg % args` through `emit` (a logger's `info`, `warning`, ...) with the journal fields given.

    `say(log.warning, "%s: %s", path, why, file=path, event="failure")` reads as one sentence where
    `log.warning(..., extra=fields(...))` would not fit on a line."""
    emit(
        msg,
        *args,
        extra=fields(file=file, folder=folder, account=account, file_id=file_id, event=event),
        stacklevel=2,
    )
