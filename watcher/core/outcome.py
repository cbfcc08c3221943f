"""What an upload attempt came to, and the one table that says how each answer is treated.

Three classes of failure, each with its own handling in the agent:
- temporary: retried with backoff for as long as the outage lasts;
- permanent for the file: an error record beside it, no retry until the file changes;
- account-level: every upload for that account pauses until a probe succeeds or the config is reloaded.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from watcher.redact import redact


class FailureClass(StrEnum):
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    ACCOUNT = "account"


# HTTP status → class. Anything not listed: other 5xx temporary, other 4xx permanent.
STATUS_CLASSES: dict[int, FailureClass] = {
    400: FailureClass.PERMANENT,
    401: FailureClass.ACCOUNT,
    402: FailureClass.ACCOUNT,
    403: FailureClass.ACCOUNT,
    404: FailureClass.ACCOUNT,  # a wrong api.base_url: no file can succeed until it is fixed
    408: FailureClass.TEMPORARY,
    412: FailureClass.ACCOUNT,
    413: FailureClass.PERMANENT,
    429: FailureClass.TEMPORARY,
    500: FailureClass.TEMPORARY,
    502: FailureClass.TEMPORARY,
    503: FailureClass.TEMPORARY,
    504: FailureClass.TEMPORARY,
    596: FailureClass.ACCOUNT,
}

# What the operator must do, for account-level answers.
OPERATOR_HINTS: dict[int, str] = {
    400: "check the folder's `account` in the config: the API does not accept it",
    401: "the API refused the token: check USEAPI_TOKEN, api.token_file or the useapi-token credential",
    402: "the useapi.net subscription has expired: renew it",
    403: "the token may not use this account: check the token and the folder's `account`",
    404: "the upload endpoint was not found: check api.base_url",
    412: "the account has no credits left: top it up on useapi.net",
    596: "MiniMax has put the account on hold: check it on useapi.net; uploads resume by themselves",
}


def classify_status(status: int, error: str = "") -> FailureClass:
    """The class of a non-success HTTP answer."""
    if status == 400 and "account" in error.lower():
        # A missing or unknown account fails every file of the folder alike: that is configuration.
        return FailureClass.ACCOUNT
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if 300 <= status < 400:
        return FailureClass.ACCOUNT  # a redirect: api.base_url points at the wrong place
    if status >= 500:
        return FailureClass.TEMPORARY
    if 400 <= status < 500:
        return FailureClass.PERMANENT
    return FailureClass.TEMPORARY


def operator_hint(status: int | None) -> str:
    if status is None:
        return ""
    if 300 <= status < 400:
        return "the API redirected the upload: check api.base_url (https://api.useapi.net/v1/minimax)"
    return OPERATOR_HINTS.get(status, "")


# Bounds on what a server may make us store. Every record is read back whole at each start (and refused
# past 64 KiB): a server that answers with a 100 KB fileID or error would otherwise have its record
# ignored and the file uploaded again at every start.
MAX_FILE_ID_CHARS = 200
MAX_OSS_PATH_CHARS = 2048
MAX_ERROR_CHARS = 500

# The documented shape `user:<uid>-minimax:<account>-file:<id>`: the uid and the account are numeric;
# the file id is numeric today, letters and underscores are tolerated in case its format grows.
_FILE_ID = re.compile(r"user:[0-9]+-minimax:[0-9]+-file:[0-9A-Za-z_]+")

# Characters that separate words: turned into a space rather than dropped, so words do not run together.
_SPACE_LIKE = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029")
# Control characters, format characters (bidi overrides, zero-width characters) and lone surrogates:
# they can rewrite a terminal line, hide text, or make the string unencodable as UTF-8.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def is_valid_file_id(value: object) -> bool:
    """Whether `value` is a fileID in its documented shape and of a sane length."""
    return (
        isinstance(value, str) and len(value) <= MAX_FILE_ID_CHARS and _FILE_ID.fullmatch(value) is not None
    )


def valid_oss_path(value: object) -> str:
    """`value` if it is a plain http(s) URL of bounded length, else "".

    A bad ossPath is dropped rather than failing the upload: the fileID is what videos/create needs, the
    ossPath only serves videos/agent-create, and a server that always sends a bad one would otherwise
    make the file upload again forever. "" is also what a 200 without ossPath gives.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_OSS_PATH_CHARS:
        return ""
    if not value.isascii() or not value.isprintable() or " " in value:
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    return value


def bounded_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` fit to store, log and print: no control or format characters, at most `limit` characters."""
    if len(text) <= limit and text.isprintable():
        return text
    kept: list[str] = []
    for char in text:
        if char in _SPACE_LIKE:
            if kept and kept[-1] != " ":  # "\r\n" is one break
                kept.append(" ")
        elif unicodedata.category(char) not in _DROPPED_CATEGORIES:
            kept.append(char)
        if len(kept) > limit:
            break
    cleaned = "".join(kept).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class UploadSuccess:
    file_id: str
    oss_path: str
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class UploadFailure:
    failure_class: FailureClass
    error: str
    # The HTTP status, or a short word for failures decided before or without an answer.
    code: int | str
    retry_after: float | None = None
    # Decided on this machine (the file could not be read, is not an image...), not by the API: it says
    # nothing about whether the account's uploads work.
    local: bool = False

    def __post_init__(self) -> None:
        # The error ends up in error records, logs, status output and hook environments, and part of it
        # may come from the server: bounded and clean here, whoever built the failure.
        # The server may echo the request, token included: redacted like every text that leaves.
        object.__setattr__(self, "error", redact(bounded_text(self.error)))


@dataclass(frozen=True)
class FileChanged:
    """The file changed, vanished or was replaced while it was being read: the result is discarded."""

    reason: str


UploadOutcome = UploadSuccess | UploadFailure | FileChanged


def temporary(error: str, code: int | str, retry_after: float | None = None) -> UploadFailure:
    return UploadFailure(FailureClass.TEMPORARY, error, code, retry_after)
