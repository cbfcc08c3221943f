"""The emulator's HTTP side: server, routes, streamed and hashed upload bodies, control endpoints.

What to answer is not decided here (see :mod:`watcher.emulator.decision` and :mod:`.videos`); this
module and :mod:`.video_http` read and write bytes and reach the emulator only through :class:`Backend`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, cast
from urllib.parse import parse_qs, urlsplit

from watcher.emulator.bodies import BadFraming, content_length, is_chunked, read_body
from watcher.emulator.decision import Acceptance, Answer, Refusal, UploadRequest
from watcher.emulator.faults import Fault
from watcher.emulator.records import Record, RecordedRequest
from watcher.emulator.video_http import VideoBackend, VideoRoutes
from watcher.emulator.videos import DOWNLOAD_PREFIX

__all__ = ["API_PREFIX", "CONTROL_PREFIX", "Backend", "Server"]

logger = logging.getLogger("watcher.emulator")

API_PREFIX: Final = "/v1/minimax"
UPLOAD_PATHS: Final = frozenset({f"{API_PREFIX}/files/", f"{API_PREFIX}/files"})
CREATE_PATH: Final = f"{API_PREFIX}/videos/create"
VIDEOS_PREFIX: Final = f"{API_PREFIX}/videos/"
CONTROL_PREFIX: Final = "/_emulator/"
MAX_CONTROL_BODY: Final = 1 << 20


class Backend(VideoBackend, Protocol):
    """What the HTTP side needs from the emulator (:class:`watcher.emulator.Emulator` provides it)."""

    @property
    def stopping(self) -> bool: ...

    @property
    def origin(self) -> str: ...

    @property
    def uid(self) -> str: ...

    @property
    def hash_bodies(self) -> bool: ...

    def decide(self, request: UploadRequest) -> Refusal | Acceptance:
        """Decide the answer, taking the fault that applies (if any) off the pending ones."""
        ...

    def hold(self, delay: float) -> None: ...

    def next_file_number(self) -> int: ...

    def record(self, request: Record) -> None: ...

    def record_other(self, method: str, path: str, status: int) -> None: ...

    @property
    def all_requests(self) -> list[Record]: ...

    @property
    def uploads(self) -> list[RecordedRequest]: ...

    @property
    def faults(self) -> list[Fault]: ...

    def add_fault(self, fault: Fault) -> None: ...

    def clear_faults(self) -> int: ...

    def clear_requests(self) -> int: ...

    @property
    def videos(self) -> list[dict[str, Any]]: ...

    @property
    def settings(self) -> dict[str, Any]: ...

    def configure(self, *, generation_seconds: float | None = None, max_jobs: int | None = None) -> None: ...


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name with getfqdn(), which can stall on a broken
        # resolver; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_all_connections(self) -> None:
        """Wake every handler thread (idle keep-alive ones included) so that they end."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError) or (
            isinstance(exc, OSError) and self.backend.stopping
        ):
            logger.debug("connection from %s ended: %r", client_address, exc)
        else:
            logger.exception("emulator: unexpected error while handling a request from %s", client_address)


class _Handler(VideoRoutes):
    server_version = "useapi-minimax-emulator/1.0"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus delayed ACKs would add
    # ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    @property
    def _server(self) -> Server:
        return cast(Server, self.server)

    @property
    def _backend(self) -> Backend:
        return self._server.backend

    # -- plumbing ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        if url.path in UPLOAD_PATHS:
            if method == "POST":
                self._upload(url.query)
            else:
                self._not_an_endpoint(method, 405, f"Use POST to upload to {API_PREFIX}/files/")
        elif url.path == CREATE_PATH:
            if method == "POST":
                self._video_create()
            else:
                self._not_an_endpoint(method, 405, f"Use POST to create a video at {CREATE_PATH}")
        elif url.path.startswith(VIDEOS_PREFIX) and "/" not in url.path[len(VIDEOS_PREFIX) :]:
            if method == "GET":
                self._video_poll(url.path[len(VIDEOS_PREFIX) :])
            else:
                self._not_an_endpoint(method, 405, "Use GET to read a video")
        elif url.path.startswith(DOWNLOAD_PREFIX):
            if method == "GET":
                self._download(url.path[len(DOWNLOAD_PREFIX) :])
            else:
                self._not_an_endpoint(method, 405, "Use GET to download a video")
        elif url.path.startswith(CONTROL_PREFIX):
            self._control(method, url.path[len(CONTROL_PREFIX) :].strip("/"), url.query)
        else:
            self._not_an_endpoint(method, 404, f"Not found: {url.path}")

    def _not_an_endpoint(self, method: str, status: int, message: str) -> None:
        """Refused, and kept in the request log: a wrong base URL shows there."""
        self._backend.record_other(method, self.path, status)
        self._discard_and_send(Answer.error(status, message))

    # -- the upload endpoint ----------------------------------------------------------------------------

    def _upload_request(self, query: str) -> UploadRequest:
        params = parse_qs(query, keep_blank_values=True)
        chunked, length, framing_error = False, None, None
        try:
            chunked = is_chunked(self.headers)
            length = None if chunked else content_length(self.headers)
        except BadFraming as exc:
            framing_error = str(exc)
        return UploadRequest(
            authorization=self.headers.get("Authorization"),
            account=(params.get("account") or [""])[0] or None,
            content_type=self.headers.get("Content-Type"),
            content_length=length,
            chunked=chunked,
            framing_error=framing_error,
        )

    def _upload(self, query: str) -> None:
        backend = self._backend
        received_at = time.time()
        request = self._upload_request(query)
        outcome = backend.decide(request)

        def record(
            account: str | None,
            status: int,
            size: int,
            sha256: str | None,
            *,
            file_id: str | None = None,
            fault: str | None = None,
        ) -> None:
            # Recorded before the answer goes out, so a client that got its answer sees the record.
            backend.record(
                RecordedRequest(
                    account=account,
                    content_type=request.content_type,
                    size=size,
                    sha256=sha256,
                    status=status,
                    file_id=file_id,
                    fault=fault,
                    received_at=received_at,
                )
            )

        if isinstance(outcome, Refusal):
            drained = self._discard_body()
            record(outcome.account, outcome.answer.status, drained or 0, None)
            self._send(outcome.answer, close=drained is None)
            return

        account, fault_kind = outcome.account, outcome.fault_kind
        hasher = hashlib.sha256() if backend.hash_bodies else None
        if outcome.resets:
            record(account, 0, read_body(self.rfile, outcome.reset_after, hasher), None, fault="reset")
            self._reset_connection()
            return
        received = read_body(self.rfile, outcome.length, hasher)
        if received != outcome.length:
            record(account, 0, received, None, fault="client_disconnected")
            self.close_connection = True
            return
        digest = None if hasher is None else hasher.hexdigest()
        if outcome.hold_seconds:
            backend.hold(outcome.hold_seconds)
        number = backend.next_file_number() if outcome.creates_file else None
        answer = outcome.answer(origin=backend.origin, uid=backend.uid, number=number)
        record(account, answer.status, received, digest, file_id=answer.file_id, fault=fault_kind)
        self._send(answer)

    # -- control endpoints ------------------------------------------------------------------------------

    def _control(self, method: str, name: str, query: str) -> None:
        backend = self._backend
        if name in ("faults", "settings") and method == "POST":
            self._control_post(name)
            return
        kinds = set(parse_qs(query).get("kind", []))
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("requests", "GET"): lambda: [
                r.to_dict() for r in backend.all_requests if not kinds or r.kind in kinds
            ],
            ("requests", "DELETE"): lambda: {"cleared": backend.clear_requests()},
            ("uploads", "GET"): lambda: [r.to_dict() for r in backend.uploads],
            ("faults", "GET"): lambda: [f.to_dict() for f in backend.faults],
            ("faults", "DELETE"): lambda: {"cleared": backend.clear_faults()},
            ("settings", "GET"): lambda: backend.settings,
            ("videos", "GET"): lambda: backend.videos,
        }
        route = routes.get((name, method))
        if route is None:
            if any(known == name for known, _ in routes):
                message = f"Method {method} not allowed on {CONTROL_PREFIX}{name}"
                self._discard_and_send(Answer.error(405, message))
            else:
                self._discard_and_send(Answer.error(404, f"Unknown control endpoint {CONTROL_PREFIX}{name}"))
            return
        drained = self._discard_body()
        self._send(Answer.json(200, route()), close=drained is None)

    def _control_post(self, name: str) -> None:
        """``POST /_emulator/faults`` (a fault or a list of them) or ``/_emulator/settings``."""
        try:
            length = None if is_chunked(self.headers) else content_length(self.headers)
        except BadFraming:
            length = None
        if length is None:
            self._discard_and_send(Answer.error(400, "Content-Length header is required"))
            return
        if length > MAX_CONTROL_BODY:
            self._discard_and_send(Answer.error(413, "Body too large"))
            return
        raw = self.rfile.read(length)
        if len(raw) != length:
            self.close_connection = True
            return
        backend = self._backend
        try:
            data = json.loads(raw)
            if name == "settings":
                backend.configure(**_settings(data))
                self._send(Answer.json(200, backend.settings))
                return
            items = data if isinstance(data, list) else [data]
            if not all(isinstance(item, dict) for item in items):
                raise ValueError("expected a JSON object or a list of objects")
            faults = [Fault.from_dict(item) for item in items]
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send(Answer.error(400, f"Invalid {name.rstrip('s')}: {exc}"))
            return
        for fault in faults:
            backend.add_fault(fault)
        self._send(Answer.json(200, {"added": len(faults), "pending": len(backend.faults)}))


def _settings(data: Any) -> dict[str, Any]:
    """The keyword arguments of ``configure`` from a settings body (raises ValueError)."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(data) - {"generation_seconds", "max_jobs"})
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}; known: generation_seconds, max_jobs")
    seconds, jobs = data.get("generation_seconds"), data.get("max_jobs")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)):
        raise ValueError(f"generation_seconds must be a number, got {seconds!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int)):
        raise ValueError(f"max_jobs must be an integer, got {jobs!r}")
    return {"generation_seconds": seconds, "max_jobs": jobs}
