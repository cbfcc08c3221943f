"""What the emulated CDN sends for one download (a plan the HTTP side carries out), and how a request
that carries the token is recognised and scrubbed before it is recorded."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote

from watcher.emulator.decision import Answer, error_message
from watcher.emulator.faults import Fault
from watcher.emulator.mp4 import huge_mp4_head, make_mp4

__all__ = ["SECRET_HEADERS", "DownloadPlan", "carries_token", "plan_download", "scrub_headers"]

AUTH_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})
SECRET_HEADERS: Final = AUTH_HEADERS | {"cookie"}
HTML: Final = b"<!doctype html><html><body><h1>Video</h1><p>Click to watch</p></body></html>"


@dataclasses.dataclass(frozen=True)
class DownloadPlan:
    """`answer`: a whole answer (refusals, HTML, a redirect). Else an MP4 body: `data`, then zeros up to
    `total` bytes; `declared`: with a Content-Length of `total`; `cut_after`: close the connection after
    that many bytes; `trickle`: spread the body over that many seconds."""

    answer: Answer | None = None
    data: bytes = b""
    total: int = 0
    declared: bool = True
    cut_after: int | None = None
    trickle: float = 0.0

    @property
    def status(self) -> int:
        return 200 if self.answer is None else self.answer.status

    @property
    def size(self) -> int:
        """How many body bytes the answer carries (a cut one: those sent before the cut)."""
        if self.answer is not None:
            return len(self.answer.body)
        return self.total if self.cut_after is None else self.cut_after


def carries_token(token: str, path: str, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a request carries an authorization header, or the token in its path or a header."""
    if token in path or token in unquote(path):
        return True
    return any(name.lower() in AUTH_HEADERS or token in value for name, value in headers)


def scrub_headers(token: str, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as recorded: secrets shown as `<removed>`, the token as `<token>`."""
    return {
        name: "<removed>" if name.lower() in SECRET_HEADERS else value.replace(token, "<token>")
        for name, value in headers
    }


def plan_download(
    fault: Fault | None, path: str, *, found: bool = True, carried: bool = False
) -> DownloadPlan:
    """What a download sends: 403 when it `carried` the token, 404 when no completed video was `found`,
    else the MP4 or what the fault that applies to it (if any) makes of it."""
    if carried:
        return DownloadPlan(Answer.error(403, "This is a CDN: it never takes the API token"))
    if not found:
        return DownloadPlan(Answer.error(404, "Not found"))
    mp4 = make_mp4()
    if fault is None:
        return DownloadPlan(data=mp4, total=len(mp4))
    headers = () if fault.retry_after is None else (("Retry-After", fault.retry_after),)
    if fault.kind == "status":
        return DownloadPlan(Answer.error(fault.status, error_message(fault.status), headers))
    if fault.kind == "html":
        return DownloadPlan(Answer(200, HTML, "text/html; charset=utf-8", headers))
    if fault.kind == "redirect":
        location = fault.url or path
        return DownloadPlan(Answer(302, b"", "text/plain", (*headers, ("Location", location))))
    if fault.kind in ("huge", "huge_undeclared"):
        return DownloadPlan(data=huge_mp4_head(fault.size), total=fault.size, declared=fault.kind == "huge")
    if fault.kind == "cut":
        return DownloadPlan(data=mp4, total=len(mp4), cut_after=len(mp4) // 2)
    return DownloadPlan(data=mp4, total=len(mp4), trickle=fault.delay)  # "slow"
