"""What an upload attempt came to, and the one table that says how each answer is treated.

Three classes of failure, each with its own handling in the agent:
- temporary: retried with backoff for as long as the outage lasts;
- permanent for the file: an error record beside it, no retry until the file changes;
- account-level: every upload for that account pauses until a probe succeeds or the config is reloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True)
class FileChanged:
    """The file changed, vanished or was replaced while it was being read: the result is discarded."""

    reason: str


UploadOutcome = UploadSuccess | UploadFailure | FileChanged


def temporary(error: str, code: int | str, retry_after: float | None = None) -> UploadFailure:
    return UploadFailure(FailureClass.TEMPORARY, error, code, retry_after)
