"""The HTTP side of the video endpoints: `POST videos/create`, `GET videos/{videoId}` and the MP4
downloads. What to answer is the emulator's (:class:`VideoBackend`); this module moves the bytes."""

from __future__ import annotations

import contextlib
from typing import Final, Protocol, cast
from urllib.parse import unquote

from watcher.emulator.bodies import BadFraming, content_length, is_chunked
from watcher.emulator.decision import Answer
from watcher.emulator.downloads import DownloadPlan
from watcher.emulator.videos import Outcome
from watcher.emulator.wire import HandlerBase

__all__ = ["MAX_CREATE_BODY", "VideoBackend", "VideoRoutes"]

MAX_CREATE_BODY: Final = 1 << 20
_STREAM_CHUNK: Final = 64 << 10
_TRICKLE_PIECES: Final = 10


class VideoBackend(Protocol):
    """What the video endpoints need from the emulator; each call records its request."""

    def hold(self, delay: float) -> None: ...

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the emulator is stopping."""
        ...

    def video_create(
        self, authorization: str | None, raw: bytes | None, problem: Answer | None
    ) -> Outcome: ...

    def video_poll(self, authorization: str | None, video_id: str) -> Outcome: ...

    def download(self, name: str, path: str, headers: list[tuple[str, str]]) -> DownloadPlan: ...


class VideoRoutes(HandlerBase):
    """The video endpoints of the emulator's request handler."""

    @property
    def _videos(self) -> VideoBackend:
        return cast(VideoBackend, self.server.backend)  # type: ignore[attr-defined]

    def _video_create(self) -> None:
        raw, problem = self._read_create_body()
        outcome = self._videos.video_create(self.headers.get("Authorization"), raw, problem)
        self._answer(outcome)

    def _read_create_body(self) -> tuple[bytes | None, Answer | None]:
        try:
            length = None if is_chunked(self.headers) else content_length(self.headers)
        except BadFraming as exc:
            length, reason = None, f"Bad request body framing: {exc}"
        else:
            reason = "Content-Length header is required"
        if length is None:
            self.close_connection = True  # the body, if any, cannot be skipped
            return None, Answer.error(400, reason)
        if length > MAX_CREATE_BODY:
            self.close_connection = True
            return None, Answer.error(413, f"The body is {length} bytes; at most {MAX_CREATE_BODY} are taken")
        raw = self.rfile.read(length)
        if len(raw) != length:
            self.close_connection = True
            return None, Answer.error(400, "The body was cut short")
        return raw, None

    def _video_poll(self, video_id: str) -> None:
        self._skip_body()
        self._answer(self._videos.video_poll(self.headers.get("Authorization"), unquote(video_id)))

    def _skip_body(self) -> None:
        if self._discard_body() is None:
            self.close_connection = True

    def _answer(self, outcome: Outcome) -> None:
        if outcome.hold:
            self._videos.hold(outcome.hold)
        if outcome.answer is None:  # the answer is lost: the connection ends without one
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
            return
        self._send(outcome.answer, close=self.close_connection)

    def _download(self, name: str) -> None:
        self._skip_body()
        plan = self._videos.download(unquote(name), self.path, list(self.headers.items()))
        if plan.answer is not None:
            self._send(plan.answer, close=self.close_connection)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if plan.declared:
            self.send_header("Content-Length", str(plan.total))
        if not plan.declared or plan.cut_after is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        with contextlib.suppress(OSError):  # a client that gives up ends the stream
            self._stream(plan)

    def _stream(self, plan: DownloadPlan) -> None:
        end = plan.total if plan.cut_after is None else plan.cut_after
        if plan.trickle:
            piece = -(-end // _TRICKLE_PIECES)
            for start in range(0, end, piece):
                self.wfile.write(_body_bytes(plan, start, min(end, start + piece)))
                self.wfile.flush()
                if not self._videos.sleep(plan.trickle / _TRICKLE_PIECES):
                    self.close_connection = True
                    return
            return
        sent = 0
        while sent < end:
            chunk = _body_bytes(plan, sent, min(end, sent + _STREAM_CHUNK))
            self.wfile.write(chunk)
            sent += len(chunk)
        self.wfile.flush()


def _body_bytes(plan: DownloadPlan, start: int, stop: int) -> bytes:
    """Bytes `start:stop` of a planned body: its data, then zeros."""
    head = plan.data[start:stop]
    return head + bytes(max(0, stop - start - len(head)))
