"""What the emulator remembers of each request: uploads, creates, polls, downloads, and the requests that
reached none of them (`other`: a wrong path or method). The control endpoints' own are not kept."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import unquote

from watcher.emulator.downloads import DownloadPlan, scrub_headers
from watcher.emulator.faults import Fault
from watcher.emulator.videos import Outcome

__all__ = [
    "CreateRecord",
    "DownloadRecord",
    "OtherRecord",
    "PollRecord",
    "Record",
    "RecordedRequest",
    "describe",
    "json_or_text",
    "summarize_uploads",
]


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the upload handler.

    ``account`` is the resolved account (the query parameter, or the only configured account when it was
    omitted; the raw parameter when it was rejected). ``content_type`` is the header as sent. ``size`` is
    the number of body bytes received. ``sha256`` is the hex digest of the whole body, None when the body
    was not fully received (reset, client disconnect), was not read (rejected request without a valid
    length) or was not hashed (an emulator made with ``hash_bodies=False``). ``status`` is the HTTP status
    answered, 0 when no answer was sent. ``fault`` is the injected fault kind, ``"client_disconnected"``
    when the client went away mid-body, else None.
    """

    account: str | None
    content_type: str | None
    size: int
    sha256: str | None
    status: int
    file_id: str | None
    fault: str | None
    received_at: float
    kind: ClassVar[str] = "upload"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @property
    def is_upload(self) -> bool:
        """A successful upload: a 200 answer that carried a fileID."""
        return self.status == 200 and self.file_id is not None


@dataclasses.dataclass(frozen=True)
class CreateRecord:
    """One ``POST videos/create``. ``body`` is the JSON it sent (its text when it was not JSON, None when
    it was not read); ``status`` the HTTP status answered, 0 when the answer was cut (``cut``: the video
    was made all the same); ``answer`` the JSON answered; ``video_id`` the video made, if one was."""

    kind: ClassVar[str] = "create"
    account: str | None
    body: Any
    status: int
    answer: Any
    video_id: str | None
    cut: bool
    fault: str | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def of(cls, outcome: Outcome, body: Any) -> CreateRecord:
        answer = outcome.answer
        return cls(
            account=outcome.account,
            body=body,
            status=0 if answer is None else answer.status,
            answer=None if answer is None else json_or_text(answer.body),
            video_id=None if outcome.video is None else outcome.video.video_id,
            cut=answer is None,
            fault=None if outcome.fault is None else outcome.fault.kind,
            received_at=time.time(),
        )


@dataclasses.dataclass(frozen=True)
class PollRecord:
    """One ``GET videos/{videoId}``: the id asked for, the HTTP status answered (0: cut), and the
    video's status and percent as answered (None when the answer was an error or odd)."""

    kind: ClassVar[str] = "poll"
    video_id: str
    account: str | None
    status: int
    video_status: int | None
    percent: int | None
    fault: str | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def of(cls, video_id: str, outcome: Outcome) -> PollRecord:
        answer = outcome.answer
        shown = None if answer is None or answer.status != 200 else json_or_text(answer.body)
        fields = shown if isinstance(shown, dict) else {}
        return cls(
            video_id=video_id,
            account=outcome.account,
            status=0 if answer is None else answer.status,
            video_status=_int_or_none(fields.get("status")),
            percent=_int_or_none(fields.get("percent")),
            fault=None if outcome.fault is None else outcome.fault.kind,
            received_at=time.time(),
        )


@dataclasses.dataclass(frozen=True)
class DownloadRecord:
    """One request below ``/_emulator/downloads/``. ``headers`` are as sent, less their secrets
    (``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are shown as ``<removed>``, the token
    as ``<token>``); ``carried_token`` says it carried an ``Authorization`` header or the token (it was
    refused with 403); ``size`` is how many body bytes were sent."""

    kind: ClassVar[str] = "download"
    path: str
    video_id: str | None
    headers: Mapping[str, str]
    carried_token: bool
    status: int
    size: int
    fault: str | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self), "headers": dict(self.headers)}

    @classmethod
    def of(
        cls,
        token: str,
        path: str,
        headers: list[tuple[str, str]],
        video_id: str | None,
        plan: DownloadPlan,
        fault: Fault | None,
        carried: bool,
    ) -> DownloadRecord:
        return cls(
            path=unquote(path).replace(token, "<token>"),
            video_id=video_id,
            headers=scrub_headers(token, headers),
            carried_token=carried,
            status=plan.status,
            size=plan.size,
            fault=None if fault is None else fault.kind,
            received_at=time.time(),
        )


@dataclasses.dataclass(frozen=True)
class OtherRecord:
    """A request that reached no endpoint, answered 404 or 405: a wrong base URL or method. ``path``
    is as sent, query included, with the token shown as ``<token>``."""

    kind: ClassVar[str] = "other"
    method: str
    path: str
    status: int
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def of(cls, token: str, method: str, path: str, status: int) -> OtherRecord:
        shown = unquote(path).replace(token, "<token>")
        return cls(method=method, path=shown, status=status, received_at=time.time())


Record = RecordedRequest | CreateRecord | PollRecord | DownloadRecord | OtherRecord


def summarize_uploads(records: list[Record]) -> str:
    """The last ten upload requests' answers, for a wait's timeout message."""
    uploads = [r for r in records if isinstance(r, RecordedRequest)]
    if not uploads:
        return "none"
    shown = [
        f"{r.status or 'no answer'}{f' ({r.fault})' if r.fault else ''} account={r.account}"
        for r in uploads[-10:]
    ]
    more = len(uploads) - len(shown)
    return ("... " if more else "") + ", ".join(shown)


def json_or_text(raw: bytes) -> Any:
    """A body as recorded: its JSON, else its text (replacement characters for bad UTF-8)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe(record: Record) -> str:
    """One log line for a request other than an upload."""
    if isinstance(record, OtherRecord):
        return f"{record.method} {record.path} -> {record.status}: not an endpoint of the API"
    fault = f" [fault: {record.fault}]" if record.fault else ""
    if isinstance(record, CreateRecord):
        answer = "cut" if record.cut else record.status
        return f"video create account={record.account} -> {answer} {record.video_id or ''}{fault}"
    if isinstance(record, PollRecord):
        shown = f" status={record.video_status} {record.percent}%" if record.video_status is not None else ""
        return f"video poll {record.video_id} -> {record.status or 'cut'}{shown}{fault}"
    if isinstance(record, DownloadRecord):
        leak = " CARRIED THE TOKEN" if record.carried_token else ""
        return f"video download {record.path} -> {record.status} ({record.size} bytes){leak}{fault}"
    return f"upload -> {record.status}"
