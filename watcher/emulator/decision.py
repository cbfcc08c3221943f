"""What the emulated endpoint answers to an upload, decided without sockets, threads or clocks.

:func:`decide` returns a :class:`Refusal` (answered without using the body) or an :class:`Acceptance`,
whose :meth:`Acceptance.answer` gives the status, body and headers once the body has arrived; the HTTP
layer (:mod:`watcher.emulator.http`) does the reading, hashing, resetting and waiting.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from watcher.emulator.faults import Fault

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "Acceptance",
    "Answer",
    "Decision",
    "Refusal",
    "UploadRequest",
    "decide",
    "error_message",
    "file_id",
    "oss_path",
    "reason_phrase",
    "take_fault",
]

# What the endpoint takes since the docs' May 2026 revision (SPEC §1), with the extension its ossPath gets.
ALLOWED_CONTENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "image/png": "png",
        "image/jpeg": "jpg",
        "audio/mpeg": "mp3",
        "audio/wav": "wav",
        "video/mp4": "mp4",
    }
)
_CONTENT_TYPE_RULE: Final = (
    "Content-Type must be image/png or image/jpeg (images), audio/mpeg or audio/wav (audio), "
    "or video/mp4 (video)"
)

# status -> (reason phrase, error message in the JSON body)
_STATUS_TEXT: Final[Mapping[int, tuple[str, str]]] = MappingProxyType(
    {
        400: ("Bad Request", "Bad request"),
        401: ("Unauthorized", "Unauthorized"),
        402: ("Payment Required", "Subscription expired, please renew your useapi.net subscription"),
        403: ("Forbidden", "Forbidden"),
        404: ("Not Found", "Not found"),
        405: ("Method Not Allowed", "Method not allowed"),
        412: ("Precondition Failed", "Insufficient credits on the MiniMax account"),
        413: ("Content Too Large", "Request body too large"),
        422: ("Unprocessable Content", "The prompt or the image was refused by content moderation"),
        429: ("Too Many Requests", "Too many requests, the account is busy, retry later"),
        500: ("Internal Server Error", "Internal server error"),
        502: ("Bad Gateway", "Bad gateway: MiniMax did not answer"),
        503: ("Service Unavailable", "Service unavailable: MiniMax is busy"),
        504: ("Gateway Timeout", "Gateway timeout: MiniMax took too long"),
        596: ("Account On Hold", "The MiniMax account is on hold, retry in a few hours"),
    }
)


def reason_phrase(status: int) -> str | None:
    """The reason phrase the real API uses for ``status``; None leaves it to the HTTP library."""
    text = _STATUS_TEXT.get(status)
    return None if text is None else text[0]


def error_message(status: int) -> str:
    """The message of the API's error body for ``status``."""
    return _STATUS_TEXT.get(status, ("", f"Error {status}"))[1]


def file_id(uid: str, account: str, number: int) -> str:
    return f"user:{uid}-minimax:{account}-file:{number}"


def oss_path(origin: str, number: int, media_type: str) -> str:
    return f"{origin}/oss/{number}.{ALLOWED_CONTENT_TYPES[media_type]}"


@dataclasses.dataclass(frozen=True)
class UploadRequest:
    """What is known of an upload before its body is read.

    ``account`` is the ``account`` query parameter, None when absent or empty. ``content_length`` is None
    when the header is missing; ``chunked`` says the body is sent with chunked transfer encoding;
    ``framing_error`` says why the body's framing cannot be understood, if it cannot.
    """

    authorization: str | None
    account: str | None
    content_type: str | None
    content_length: int | None
    chunked: bool = False
    framing_error: str | None = None


@dataclasses.dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body, its content type and any extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    file_id: str | None = None

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = (), file_id: str | None = None
    ) -> Answer:
        return cls(status, json.dumps(payload).encode(), "application/json", headers, file_id)

    @classmethod
    def error(cls, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        """The API's error shape: ``{"error": message, "code": status}``."""
        return cls.json(status, {"error": message, "code": status}, headers)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """The request is answered with an error; its body is only drained.

    ``account`` is what gets recorded: the raw query parameter.
    """

    account: str | None
    answer: Answer


@dataclasses.dataclass(frozen=True)
class Acceptance:
    """The request is good: its ``length`` body bytes are to be read, then :meth:`answer` sent.

    ``account`` is resolved (the only configured one when the parameter was omitted). ``fault`` is the
    fault that applies to this request, as it was when taken, or None.
    """

    account: str
    media_type: str
    length: int
    fault: Fault | None = None

    @property
    def fault_kind(self) -> str | None:
        return None if self.fault is None else self.fault.kind

    @property
    def resets(self) -> bool:
        """Read about half of the body, then reset the connection without an answer."""
        return self.fault_kind == "reset"

    @property
    def reset_after(self) -> int:
        """How many body bytes to read before a reset."""
        return max(1, self.length // 2)

    @property
    def hold_seconds(self) -> float:
        """How long to keep the answer back once the body has arrived: a "slow" fault's `delay`, or
        another fault's (a 503 that comes late keeps an upload in flight the way a busy API does)."""
        return self.fault.delay if self.fault is not None and self.fault.kind != "reset" else 0.0

    @property
    def creates_file(self) -> bool:
        """Whether the answer stores a file, so needs a fresh file number."""
        return self.fault_kind not in ("status", "non_json", "reset")

    def answer(self, *, origin: str, uid: str, number: int | None = None) -> Answer:
        """The answer once the whole body has arrived; ``number`` is needed when :attr:`creates_file`."""
        fault = self.fault
        headers: tuple[tuple[str, str], ...] = ()
        if fault is not None and fault.retry_after is not None:
            headers = (("Retry-After", fault.retry_after),)
        if fault is not None and fault.kind == "status":
            return Answer.error(fault.status, error_message(fault.status), headers)
        if fault is not None and fault.kind == "non_json":
            return Answer(200, b"<html>oops</html>", "text/html", headers)
        if number is None:
            raise ValueError(f"a {self.fault_kind or 'successful'} answer needs a file number")
        path = oss_path(origin, number, self.media_type)
        if fault is not None and fault.kind == "no_file_id":
            return Answer.json(200, {"ossPath": path}, headers)
        new_id = file_id(uid, self.account, number)
        return Answer.json(200, {"ossPath": path, "fileID": new_id}, headers, file_id=new_id)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for one request, and the pending faults once it has consumed its own."""

    outcome: Refusal | Acceptance
    faults: tuple[Fault, ...]


def take_fault(
    faults: Sequence[Fault], account: str, *, target: str = "upload", video_id: str | None = None
) -> tuple[Fault | None, tuple[Fault, ...]]:
    """The first fault that applies to a ``target`` request for ``account`` (and the video ``video_id``),
    as a copy, and the faults left pending after it.

    A fault with a positive ``times`` is counted down and dropped at zero; ``times=-1`` stays. ``faults``
    is not modified.
    """
    for index, fault in enumerate(faults):
        if not fault.matches(target, account, video_id):
            continue
        taken = dataclasses.replace(fault)
        if fault.times == -1:
            return taken, tuple(faults)
        rest = (dataclasses.replace(fault, times=fault.times - 1),) if fault.times > 1 else ()
        return taken, (*faults[:index], *rest, *faults[index + 1 :])
    return None, tuple(faults)


def decide(
    request: UploadRequest, *, token: str, accounts: Sequence[str], faults: Sequence[Fault]
) -> Decision:
    """The answer to ``request`` by an endpoint with ``token`` and ``accounts`` and these pending faults.

    Checked in the real API's order: token (401), content type, body framing, account (400). Faults only
    apply to requests that pass every check; a refused request leaves them all pending.
    """

    def refuse(status: int, message: str, account: str | None = request.account) -> Decision:
        return Decision(Refusal(account, Answer.error(status, message)), tuple(faults))

    if request.authorization != f"Bearer {token}":
        return refuse(401, "Unauthorized")
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ALLOWED_CONTENT_TYPES:
        shown = "missing" if request.content_type is None else repr(request.content_type)
        return refuse(400, f"{_CONTENT_TYPE_RULE}, got {shown}")
    if request.framing_error is not None:
        return refuse(400, f"Bad request body framing: {request.framing_error}")
    if request.chunked:
        return refuse(400, "Content-Length header is required (chunked transfer encoding is not supported)")
    if request.content_length is None:
        return refuse(400, "Content-Length header is required")
    if request.content_length == 0:
        return refuse(400, "Request body is empty: send the raw file bytes")
    account = request.account
    if account is None:
        if len(accounts) != 1:
            return refuse(400, "account is required when several accounts are configured")
        account = accounts[0]
    elif account not in accounts:
        return refuse(400, f"Account {account} not found")
    fault, pending = take_fault(faults, account)
    return Decision(Acceptance(account, media_type, request.content_length, fault), pending)
