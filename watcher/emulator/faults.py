"""Faults: the misbehaviours a test can ask the emulator for, and their parsing from JSON."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, cast

__all__ = ["FAULT_KINDS", "FAULT_TARGETS", "KINDS_BY_TARGET", "Fault", "FaultKind", "FaultTarget"]

FaultKind = Literal[
    "status",
    "reset",
    "slow",
    "no_file_id",
    "non_json",
    "cut",
    "answer",
    "final",
    "never_ends",
    "html",
    "huge",
    "huge_undeclared",
    "redirect",
]
FAULT_KINDS: Final[frozenset[str]] = frozenset(typing.get_args(FaultKind))
FaultTarget = Literal["upload", "create", "poll", "download"]
FAULT_TARGETS: Final[frozenset[str]] = frozenset(typing.get_args(FaultTarget))
KINDS_BY_TARGET: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "upload": frozenset({"status", "reset", "slow", "no_file_id", "non_json"}),
        "create": frozenset({"status", "slow", "cut", "non_json", "answer", "final", "never_ends"}),
        "poll": frozenset({"status", "slow", "cut", "non_json", "answer", "final", "never_ends"}),
        "download": frozenset({"status", "slow", "cut", "html", "huge", "huge_undeclared", "redirect"}),
    }
)
MIN_HUGE: Final = 64


@dataclasses.dataclass
class Fault:
    """A misbehaviour to inject into upcoming requests of one ``target``.

    ``target`` says which requests it applies to: ``"upload"`` (the default), ``"create"``
    (``videos/create``), ``"poll"`` (``GET videos/{videoId}``) or ``"download"`` (the MP4 path).
    ``kind``, by target:
      * ``"status"`` (all) -- answer ``status`` (400-599) with ``{"error": ..., "code": status}``;
        a refused create makes no video;
      * ``"reset"`` (upload) -- read about half of the body, then close with a TCP RST, no answer;
      * ``"slow"`` -- wait ``delay`` seconds, then answer normally (a create's video already exists
        while it waits: a client that times out has lost the answer); a download sends its headers at
        once and trickles its body over ``delay`` seconds;
      * ``"no_file_id"`` (upload) -- 200 with ``{"ossPath": ...}`` only;
      * ``"non_json"`` (upload, create, poll) -- 200 with ``<html>oops</html>`` as ``text/html``
        (a create's video is made all the same);
      * ``"cut"`` -- create: the request is read and the video IS created, then the connection is
        closed without an answer (the lost answer); poll: closed without an answer; download: the
        headers promise the whole MP4, half of it is sent, then the connection is closed;
      * ``"answer"`` (create, poll) -- 200 (or ``status``) with the normal answer updated by ``answer``
        when it is a JSON object, else with ``answer`` itself (odd videoIds, odd URLs...); a create's
        video is made all the same;
      * ``"final"`` (create, poll) -- the video ends with ``video_status`` (3 failed; 5, 7, 14 moderated):
        a create's video when its generation time is up, a polled one at once;
      * ``"never_ends"`` (create, poll) -- the video stays processing at 99 % for ever;
      * ``"html"`` (download) -- 200 ``text/html``, not an MP4;
      * ``"huge"`` / ``"huge_undeclared"`` (download) -- a ``size``-byte MP4 (boxes that add up, zeros),
        with or without a ``Content-Length``; streamed until the client goes away;
      * ``"redirect"`` (download) -- 302 to ``url``, else to the same download again.

    ``delay`` also holds back the answer of ``status``, ``no_file_id``, ``non_json`` and ``answer``
    faults. ``retry_after`` is sent as a ``Retry-After`` header when set. ``times`` is how many matching
    requests the fault applies to (-1: until cleared). ``account`` restricts it to one account (a
    poll's or a download's is its video's); ``video_id`` to one video (polls and downloads). Faults are
    consumed in FIFO order; the first matching one wins. Faults only apply to requests that would
    otherwise succeed (valid token, body and account; a known video; a download without the token).
    """

    kind: FaultKind
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    times: int = 1
    account: str | None = None
    target: FaultTarget = "upload"
    video_id: str | None = None
    video_status: int | None = None
    answer: Any = None
    url: str | None = None
    size: int = 0

    def __post_init__(self) -> None:
        if self.target not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target {self.target!r}, expected one of {sorted(FAULT_TARGETS)}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, expected one of {sorted(FAULT_KINDS)}")
        kinds = KINDS_BY_TARGET[self.target]
        if self.kind not in kinds:
            article = "an" if self.target == "upload" else "a"
            raise ValueError(
                f"{article} {self.target} fault cannot be {self.kind!r}, expected one of {sorted(kinds)}"
            )
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a 'status' fault needs a status between 400 and 599, got {self.status}")
        if self.kind == "answer" and not (self.status == 0 or 200 <= self.status <= 599):
            raise ValueError(f"an 'answer' fault's status must be 0 (200) or 200-599, got {self.status}")
        if self.kind == "answer":
            if self.answer is None:
                raise ValueError("an 'answer' fault needs an 'answer' (a JSON value)")
            try:
                json.dumps(self.answer)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"an 'answer' fault's answer must be JSON: {exc}") from None
        if self.kind == "final" and (self.video_status is None or self.video_status < 0):
            raise ValueError("a 'final' fault needs a video_status (3 failed; 5, 7 or 14 moderated)")
        if self.kind in ("huge", "huge_undeclared") and self.size < MIN_HUGE:
            raise ValueError(f"a {self.kind!r} fault needs a size of at least {MIN_HUGE} bytes")
        if self.video_id is not None and self.target not in ("poll", "download"):
            raise ValueError("video_id narrows poll and download faults only")
        if self.times == 0 or self.times < -1:
            raise ValueError(f"times must be a positive count or -1 (forever), got {self.times}")
        if self.delay < 0:
            raise ValueError(f"delay must not be negative, got {self.delay}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from JSON-like data, checking names and types (raises ValueError)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        kind, target = data["kind"], data.get("target", "upload")
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}, expected one of {sorted(FAULT_KINDS)}")
        if not isinstance(target, str) or target not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target {target!r}, expected one of {sorted(FAULT_TARGETS)}")
        ints = {name: data.get(name, default) for name, default in (("status", 0), ("times", 1), ("size", 0))}
        ints["video_status"] = data.get("video_status")
        for name, value in ints.items():
            if value is None and name == "video_status":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"fault field {name!r} must be an integer, got {value!r}")
        delay = data.get("delay", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ValueError(f"fault field 'delay' must be a number, got {delay!r}")
        texts = {name: data.get(name) for name in ("retry_after", "account", "video_id", "url")}
        for name, value in texts.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
                raise ValueError(f"fault field {name!r} must be a string or null, got {value!r}")
        text = {name: None if value is None else str(value) for name, value in texts.items()}
        return cls(
            kind=cast(FaultKind, kind),
            target=cast(FaultTarget, target),
            status=ints["status"],
            times=ints["times"],
            size=ints["size"],
            video_status=ints["video_status"],
            delay=float(delay),
            retry_after=text["retry_after"],
            account=text["account"],
            video_id=text["video_id"],
            url=text["url"],
            answer=data.get("answer"),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def applies_to(self, account: str) -> bool:
        return self.account is None or self.account == account

    def matches(self, target: str, account: str, video_id: str | None = None) -> bool:
        """Whether this fault applies to a `target` request for `account` (and, for polls and
        downloads, the video `video_id`)."""
        return (
            self.target == target
            and self.applies_to(account)
            and (self.video_id is None or self.video_id == video_id)
        )
