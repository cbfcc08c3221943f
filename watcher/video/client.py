"""The useapi.net MiniMax videos client: `POST videos/create` and `GET videos/{videoId}` as `ApiAnswer`s.

One request per call, never retried here (a create spends credits); each exchange bounded in time and
its answer to 1 MiB; no redirect followed, so the token goes to the base URL's host only.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote

import urllib3

from watcher.core.outcome import bounded_text
from watcher.core.retry import parse_retry_after
from watcher.core.video import ApiAnswer
from watcher.redact import redact
from watcher.upload.client import api_headers, describe_error, pool_manager
from watcher.upload.deadlines import Attempt, deadlines, this_thread

MAX_ANSWER_BYTES = 1 << 20
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0


class _Body:
    """A request body that notes whether the sender ever asked for it: until then no byte of it can
    have reached the server, so a create that failed before is known not to have been made."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.started = False

    def __len__(self) -> int:
        return len(self._data)

    def read(self, n: int = -1) -> bytes:
        self.started = True
        data, self._data = self._data, b""
        return data


class VideoClient:
    """Calls `{base_url}/videos/...`; thread-safe. Never raises for network or API trouble."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._connect_timeout = connect_timeout
        # The whole exchange, however slowly a server trickles its answer (a read timeout bounds one read).
        self._limit = connect_timeout + read_timeout
        self._polls = pool_manager(self._base + "/", 1)
        # Creates get a connection of their own, new each time: one left idle since the last create may
        # have been closed by the server, and a failure on it could not tell whether the create was made.
        self._creates = pool_manager(self._base + "/", 1)
        self._create_lock = threading.Lock()
        self._live: set[Attempt] = set()  # requests under way (`cut_short`)
        self._live_lock = threading.Lock()
        deadlines.hold()
        self._closed = False
        # A compressed answer is never inflated: 1 MiB of gzip may hold a gigabyte.
        self._headers = {**api_headers(token), "Accept-Encoding": "identity"}

    def close(self) -> None:
        close_pools(self._polls)
        close_pools(self._creates)
        if not self._closed:
            self._closed = True
            deadlines.release()

    def create(self, body: dict[str, Any]) -> ApiAnswer:
        """`POST videos/create` with `body` as JSON: one request, whatever comes of it."""
        try:
            payload = json.dumps(body, ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            return ApiAnswer(None, error=f"the request cannot be sent as JSON: {exc}", sent=False)
        with self._create_lock:
            try:
                return self._exchange(self._creates, "POST", f"{self._base}/videos/create", _Body(payload))
            finally:
                close_pools(self._creates)

    def cut_short(self, message: str = "the agent is stopping") -> None:
        """End the requests under way now (the deadline watch shuts their sockets): a stop must not wait
        for a slow API. A create cut so has lost its answer: it becomes unknown, as after a kill."""
        with self._live_lock:
            live = list(self._live)
        for attempt in live:
            deadlines.move(attempt, time.monotonic(), message)

    def poll(self, video_id: str) -> ApiAnswer:
        """`GET videos/{video_id}`, the id quoted so that it stays one path segment of the base URL."""
        return self._exchange(self._polls, "GET", f"{self._base}/videos/{_segment(video_id)}", None)

    def _exchange(self, pool: urllib3.PoolManager, method: str, url: str, body: _Body | None) -> ApiAnswer:
        attempt = Attempt(
            time.monotonic() + self._limit,
            f"the API did not answer within {self._limit:g} s",
            send_socket_timeout=self._connect_timeout,
        )
        deadlines.begin(attempt)
        this_thread.attempt = attempt
        with self._live_lock:
            self._live.add(attempt)
        try:
            answer = self._request(pool, method, url, body, attempt.expires_at)
        finally:
            this_thread.attempt = None
            with self._live_lock:
                self._live.discard(attempt)
            expired = deadlines.end(attempt)
        if time.monotonic() >= attempt.expires_at:
            expired = attempt.message  # seen by the body's reader before the watch thread woke
        if expired is not None and answer.data is None:
            # Cut by the deadline: whatever was read is void. A parsed object is whole (JSON objects
            # close themselves), so an answer that made it just in time is kept.
            return ApiAnswer(None, error=expired, sent=answer.sent)
        return answer

    def _request(
        self, pool: urllib3.PoolManager, method: str, url: str, body: _Body | None, deadline: float
    ) -> ApiAnswer:
        headers = dict(self._headers)
        if body is not None:
            headers.update({"Content-Type": "application/json", "Content-Length": str(len(body))})
        try:
            response = pool.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                timeout=self._timeout,
                preload_content=False,
                retries=False,  # the caller's to decide, on its schedule; a create is never resent
                redirect=False,  # the token stays with the base URL's host
            )
        except (urllib3.exceptions.HTTPError, OSError, UnicodeError, ValueError) as exc:
            sent = not _never_connected(exc) and (body is None or body.started)
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                return ApiAnswer(None, error="the API did not answer in time", sent=sent)
            return ApiAnswer(None, error=f"network error: {describe_error(exc)}", sent=sent)
        status = response.status
        raw = _read_body(response, deadline)
        if raw is None:
            response.close()
            if 200 <= status < 300:
                # The answer (a videoId, maybe) is lost: as if none had come.
                return ApiAnswer(None, error=f"HTTP {status}, its answer cut short")
            return _answer(response, status, None, f"HTTP {status}, its body cut short")
        if len(raw) > MAX_ANSWER_BYTES:
            response.close()  # the rest is never read: the connection cannot carry another request
            return _answer(response, status, None, f"HTTP {status} with a body over {MAX_ANSWER_BYTES} bytes")
        response.release_conn()
        try:
            payload: Any = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: arrays nested a hundred thousand deep
            return _answer(response, status, None, f"HTTP {status} with a body that is not JSON")
        if not isinstance(payload, dict):
            return _answer(response, status, None, f"HTTP {status} with a body that is not a JSON object")
        if 200 <= status < 300:
            return _answer(response, status, payload, "")
        message = payload.get("error")
        if not isinstance(message, str) or not message:
            message = payload.get("message")
        detail = f": {message}" if isinstance(message, str) and message else ""
        return _answer(response, status, payload, f"HTTP {status}{detail}")


def close_pools(manager: urllib3.PoolManager) -> None:
    """Close every connection of `manager` now: urllib3 2's `clear` only forgets its pools, and their
    sockets stay open until the pools are garbage (never, while a traceback holds one)."""
    # keys(): the container refuses to be iterated itself.
    pools = [manager.pools.get(key) for key in manager.pools.keys()]  # noqa: SIM118
    manager.clear()
    for pool in pools:
        if pool is not None:
            pool.close()


def _read_body(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes | None:
    """The body, up to one byte over MAX_ANSWER_BYTES; None when it was cut short or is late.

    Read one socket read at a time, with the deadline checked between reads: once the server has said
    `Connection: close`, http.client hands the socket to the response and the deadline watch cannot
    reach it any more.
    """
    parts: list[bytes] = []
    size = 0
    try:
        while size <= MAX_ANSWER_BYTES:
            if time.monotonic() >= deadline:
                return None
            chunk = response.read1(MAX_ANSWER_BYTES + 1 - size, decode_content=False)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except (urllib3.exceptions.HTTPError, OSError):
        return None
    return b"".join(parts)


def _answer(
    response: urllib3.BaseHTTPResponse, status: int, data: dict[str, Any] | None, error: str
) -> ApiAnswer:
    return ApiAnswer(
        status,
        data,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        error=bounded_text(redact(error)),
    )


def _never_connected(exc: BaseException) -> bool:
    """Whether the request cannot have reached the server: no connection was made (refused, a name
    that does not resolve, a connect timeout) or the proxy could not be reached."""
    # NewConnectionError and NameResolutionError are ConnectTimeoutErrors, for urllib3's history; urllib3
    # raises ProxyError only when the connection to the proxy was never made.
    return isinstance(exc, urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.ProxyError)


def _segment(video_id: str) -> str:
    """`video_id` as one path segment: `/`, `?`, `#`, `%`, spaces and the like escaped, `.` and `..`
    too (a URL parser would resolve them), the colons of `user:1-minimax:2-video:3` kept."""
    quoted = quote(video_id, safe=":")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted
