"""A real HTTP emulator of the useapi.net MiniMax files endpoint (SPEC §1), standard library only.

It listens on a loopback port and answers ``POST /v1/minimax/files/?account=...`` the way the real API
does: bearer-token auth, ``image/png`` / ``image/jpeg`` bodies sent raw, the single/several accounts rule,
and a ``{"ossPath", "fileID"}`` answer. Bodies are streamed through sha256 in 1 MiB chunks and never held
in memory, so multi-gigabyte uploads are fine.

Tests can make it misbehave with :class:`Fault` (error statuses with or without ``Retry-After``, connection
resets, slow answers, a 200 without ``fileID``, a 200 that is not JSON), either in-process through
:meth:`Emulator.add_fault` or over HTTP through the control endpoints (no auth needed)::

    GET    /_emulator/requests   every request that reached the upload handler (list of dicts)
    DELETE /_emulator/requests   forget them
    GET    /_emulator/uploads    only the successful ones (200 with a fileID)
    GET    /_emulator/faults     pending faults
    POST   /_emulator/faults     add a fault (JSON object with Fault's fields) or a list of them
    DELETE /_emulator/faults     clear pending faults
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import itertools
import json
import logging
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, Final, Literal, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "API_PREFIX",
    "FAULT_KINDS",
    "Emulator",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "serve_forever",
]

logger = logging.getLogger("watcher.emulator")

API_PREFIX: Final = "/v1/minimax"
UPLOAD_PATHS: Final = frozenset({f"{API_PREFIX}/files/", f"{API_PREFIX}/files"})
CONTROL_PREFIX: Final = "/_emulator/"
ALLOWED_CONTENT_TYPES: Final = frozenset({"image/png", "image/jpeg"})
CHUNK_SIZE: Final = 1 << 20
MAX_CONTROL_BODY: Final = 1 << 20
FILE_ID_BASE: Final = 380_000_000_000_000

FaultKind = Literal["status", "reset", "slow", "no_file_id", "non_json"]
FAULT_KINDS: Final[frozenset[str]] = frozenset(typing.get_args(FaultKind))

# status -> (reason phrase, error message in the JSON body)
_STATUS_TEXT: Final[dict[int, tuple[str, str]]] = {
    400: ("Bad Request", "Bad request"),
    401: ("Unauthorized", "Unauthorized"),
    402: ("Payment Required", "Subscription expired, please renew your useapi.net subscription"),
    404: ("Not Found", "Not found"),
    405: ("Method Not Allowed", "Method not allowed"),
    412: ("Precondition Failed", "Insufficient credits on the MiniMax account"),
    413: ("Content Too Large", "Request body too large"),
    429: ("Too Many Requests", "Too many requests, the account is busy, retry later"),
    500: ("Internal Server Error", "Internal server error"),
    502: ("Bad Gateway", "Bad gateway: MiniMax did not answer"),
    503: ("Service Unavailable", "Service unavailable: MiniMax is busy"),
    504: ("Gateway Timeout", "Gateway timeout: MiniMax took too long"),
    596: ("Account On Hold", "The MiniMax account is on hold, retry in a few hours"),
}


@dataclasses.dataclass
class Fault:
    """A misbehaviour to inject into upcoming upload requests.

    ``kind``:
      * ``"status"`` -- answer ``status`` (400-599) with ``{"error": ..., "code": status}``;
      * ``"reset"`` -- read about half of the body, then close the connection with a TCP RST, no answer;
      * ``"slow"`` -- read the body, wait ``delay`` seconds, then answer normally (success);
      * ``"no_file_id"`` -- 200 with ``{"ossPath": ...}`` only;
      * ``"non_json"`` -- 200 with ``<html>oops</html>`` as ``text/html``.

    ``retry_after`` is sent as a ``Retry-After`` header on the answer when set. ``times`` is how many
    matching requests the fault applies to (-1: until cleared). ``account`` restricts it to requests for
    that account (after the default account is resolved); None matches any. Faults are consumed in FIFO
    order; the first matching one wins. Faults only apply to requests that would otherwise succeed
    (valid token, content type, length and account).
    """

    kind: FaultKind
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    times: int = 1
    account: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, expected one of {sorted(FAULT_KINDS)}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a 'status' fault needs a status between 400 and 599, got {self.status}")
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
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}, expected one of {sorted(FAULT_KINDS)}")
        status = data.get("status", 0)
        times = data.get("times", 1)
        delay = data.get("delay", 0.0)
        for name, value in (("status", status), ("times", times)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"fault field {name!r} must be an integer, got {value!r}")
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ValueError(f"fault field 'delay' must be a number, got {delay!r}")
        retry_after = data.get("retry_after")
        account = data.get("account")
        for name, value in (("retry_after", retry_after), ("account", account)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
                raise ValueError(f"fault field {name!r} must be a string or null, got {value!r}")
        return cls(
            kind=cast(FaultKind, kind),
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            delay=float(delay),
            times=times,
            account=None if account is None else str(account),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the upload handler.

    ``account`` is the resolved account (the query parameter, or the only configured account when it was
    omitted; the raw parameter when it was rejected). ``content_type`` is the header as sent. ``size`` is
    the number of body bytes received. ``sha256`` is the hex digest of the whole body, None when the body
    was not fully received (reset, client disconnect) or was not read (rejected request without a valid
    length). ``status`` is the HTTP status answered, 0 when no answer was sent. ``fault`` is the injected
    fault kind, ``"client_disconnected"`` when the client went away mid-body, else None.
    """

    account: str | None
    content_type: str | None
    size: int
    sha256: str | None
    status: int
    file_id: str | None
    fault: str | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _BadFraming(Exception):
    """The request's body framing (Content-Length / Transfer-Encoding) cannot be understood."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
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
            isinstance(exc, OSError) and self.emulator.stopping
        ):
            logger.debug("connection from %s ended: %r", client_address, exc)
        else:
            logger.exception("emulator: unexpected error while handling a request from %s", client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "useapi-minimax-emulator/1.0"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus delayed ACKs would add
    # ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    @property
    def _emulator(self) -> Emulator:
        return self._server.emulator

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
                self._discard_and_send_error(405, f"Use POST to upload to {API_PREFIX}/files/")
        elif url.path.startswith(CONTROL_PREFIX):
            self._control(method, url.path[len(CONTROL_PREFIX) :].strip("/"))
        else:
            self._discard_and_send_error(404, f"Not found: {url.path}")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        close: bool = False,
    ) -> None:
        reason = _STATUS_TEXT.get(status, (None, ""))[0]
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, headers: Sequence[tuple[str, str]] = (), *, close: bool = False
    ) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers, close=close)

    def _send_error_json(
        self, status: int, message: str, headers: Sequence[tuple[str, str]] = (), *, close: bool = False
    ) -> None:
        self._send_json(status, {"error": message, "code": status}, headers, close=close)

    def _discard_and_send_error(self, status: int, message: str) -> None:
        drained = self._discard_body()
        self._send_error_json(status, message, close=drained is None)

    # -- request bodies ---------------------------------------------------------------------------------

    def _is_chunked(self) -> bool:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is None:
            return False
        if encoding.strip().lower() != "chunked":
            raise _BadFraming(f"unsupported Transfer-Encoding {encoding!r}")
        return True

    def _content_length(self) -> int | None:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        if len(set(values)) > 1:
            raise _BadFraming("conflicting Content-Length headers")
        value = values[0].strip()
        if not value.isdigit():
            raise _BadFraming(f"invalid Content-Length {value!r}")
        return int(value)

    def _read(self, length: int, hasher: Any = None) -> int:
        """Read up to ``length`` body bytes in chunks, feeding ``hasher``; return how many arrived."""
        received = 0
        while received < length:
            try:
                chunk = self.rfile.read(min(CHUNK_SIZE, length - received))
            except OSError:
                break
            if not chunk:
                break
            if hasher is not None:
                hasher.update(chunk)
            received += len(chunk)
        return received

    def _drain_chunked(self) -> int | None:
        """Read and drop a chunked body; return its size, None if it was malformed or cut short."""
        total = 0
        try:
            while True:
                line = self.rfile.readline(65537)
                if not line.endswith(b"\n"):
                    return None
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        trailer = self.rfile.readline(65537)
                        if not trailer.endswith(b"\n"):
                            return None
                        if trailer in (b"\r\n", b"\n"):
                            return total
                if self._read(size) != size:
                    return None
                total += size
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    return None
        except (OSError, ValueError):
            return None

    def _discard_body(self) -> int | None:
        """Read and drop whatever body the request has; its size, or None if the connection is unusable."""
        try:
            if self._is_chunked():
                return self._drain_chunked()
            length = self._content_length()
        except _BadFraming:
            return None
        if not length:
            return 0
        received = self._read(length)
        return received if received == length else None

    # -- the upload endpoint ----------------------------------------------------------------------------

    def _upload(self, query: str) -> None:
        emulator = self._emulator
        received_at = time.time()
        params = parse_qs(query, keep_blank_values=True)
        account_param = (params.get("account") or [""])[0] or None
        content_type = self.headers.get("Content-Type")

        def reject(status: int, message: str, account: str | None = account_param) -> None:
            drained = self._discard_body()
            emulator._record(
                RecordedRequest(
                    account=account,
                    content_type=content_type,
                    size=drained or 0,
                    sha256=None,
                    status=status,
                    file_id=None,
                    fault=None,
                    received_at=received_at,
                )
            )
            self._send_error_json(status, message, close=drained is None)

        if not emulator._token_matches(self.headers.get("Authorization")):
            reject(401, "Unauthorized")
            return
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type not in ALLOWED_CONTENT_TYPES:
            shown = "missing" if content_type is None else repr(content_type)
            reject(400, f"Content-Type must be image/png or image/jpeg, got {shown}")
            return
        try:
            chunked = self._is_chunked()
            length = None if chunked else self._content_length()
        except _BadFraming as exc:
            reject(400, f"Bad request body framing: {exc}")
            return
        if chunked:
            reject(400, "Content-Length header is required (chunked transfer encoding is not supported)")
            return
        if length is None:
            reject(400, "Content-Length header is required")
            return
        if length == 0:
            reject(400, "Request body is empty: send the raw image bytes")
            return
        account, account_error = emulator._resolve_account(account_param)
        if account is None:
            reject(400, account_error or "Bad account")
            return

        fault = emulator._take_fault(account)
        fault_kind = None if fault is None else fault.kind
        hasher = hashlib.sha256()

        def record(status: int, size: int, sha256: str | None, file_id: str | None, kind: str | None) -> None:
            # Recorded before the answer goes out, so a client that got its answer sees the record.
            emulator._record(
                RecordedRequest(
                    account=account,
                    content_type=content_type,
                    size=size,
                    sha256=sha256,
                    status=status,
                    file_id=file_id,
                    fault=kind,
                    received_at=received_at,
                )
            )

        if fault is not None and fault.kind == "reset":
            received = self._read(max(1, length // 2), hasher)
            record(0, received, None, None, "reset")
            self._reset_connection()
            return

        received = self._read(length, hasher)
        if received != length:
            record(0, received, None, None, "client_disconnected")
            self.close_connection = True
            return
        digest = hasher.hexdigest()

        extra_headers: list[tuple[str, str]] = []
        if fault is not None and fault.retry_after is not None:
            extra_headers.append(("Retry-After", fault.retry_after))

        if fault is not None and fault.kind == "status":
            record(fault.status, received, digest, None, fault_kind)
            message = _STATUS_TEXT.get(fault.status, ("", f"Error {fault.status}"))[1]
            self._send_error_json(fault.status, message, extra_headers)
            return
        if fault is not None and fault.kind == "non_json":
            record(200, received, digest, None, fault_kind)
            self._send(200, b"<html>oops</html>", "text/html", extra_headers)
            return
        if fault is not None and fault.kind == "slow":
            emulator._hold(fault.delay)

        number = emulator._next_file_number()
        extension = "png" if media_type == "image/png" else "jpg"
        oss_path = f"{emulator.origin}/oss/{number}.{extension}"
        if fault is not None and fault.kind == "no_file_id":
            record(200, received, digest, None, fault_kind)
            self._send_json(200, {"ossPath": oss_path}, extra_headers)
            return
        file_id = f"user:{emulator.uid}-minimax:{account}-file:{number}"
        record(200, received, digest, file_id, fault_kind)
        self._send_json(200, {"ossPath": oss_path, "fileID": file_id}, extra_headers)

    def _reset_connection(self) -> None:
        """Close the connection with a TCP RST and no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket only really closes once the buffered reader's reference is gone.
        self.rfile.close()
        self.connection.close()

    # -- control endpoints ------------------------------------------------------------------------------

    def _control(self, method: str, name: str) -> None:
        emulator = self._emulator
        if name == "faults" and method == "POST":
            self._add_faults()
            return
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("requests", "GET"): lambda: [r.to_dict() for r in emulator.requests],
            ("requests", "DELETE"): lambda: {"cleared": emulator.clear_requests()},
            ("uploads", "GET"): lambda: [r.to_dict() for r in emulator.uploads],
            ("faults", "GET"): lambda: [f.to_dict() for f in emulator.faults],
            ("faults", "DELETE"): lambda: {"cleared": emulator.clear_faults()},
        }
        route = routes.get((name, method))
        if route is None:
            if any(known == name for known, _ in routes):
                self._discard_and_send_error(405, f"Method {method} not allowed on {CONTROL_PREFIX}{name}")
            else:
                self._discard_and_send_error(404, f"Unknown control endpoint {CONTROL_PREFIX}{name}")
            return
        drained = self._discard_body()
        self._send_json(200, route(), close=drained is None)

    def _add_faults(self) -> None:
        try:
            length = None if self._is_chunked() else self._content_length()
        except _BadFraming:
            length = None
        if length is None:
            self._discard_and_send_error(400, "Content-Length header is required")
            return
        if length > MAX_CONTROL_BODY:
            self._discard_and_send_error(413, "Fault list too large")
            return
        raw = self.rfile.read(length)
        if len(raw) != length:
            self.close_connection = True
            return
        try:
            data = json.loads(raw)
            items = data if isinstance(data, list) else [data]
            if not all(isinstance(item, dict) for item in items):
                raise ValueError("expected a JSON object or a list of objects")
            faults = [Fault.from_dict(item) for item in items]
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send_error_json(400, f"Invalid fault: {exc}")
            return
        for fault in faults:
            self._emulator.add_fault(fault)
        self._send_json(200, {"added": len(faults), "pending": len(self._emulator.faults)})


class Emulator:
    """The MiniMax files endpoint on a loopback port, served from a daemon thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        token: str,
        accounts: Sequence[str] = ("123456",),
        host: str = "127.0.0.1",
        port: int = 0,
        uid: str = "1",
        poll_interval: float = 0.02,
    ) -> None:
        # Tests start and stop many emulators and want stop() quick; a long-running one (the CLI)
        # polls rarely, so an idle `run --emulate` costs no CPU.
        self._poll_interval = poll_interval
        if not token:
            raise ValueError("the emulator needs a non-empty token")
        if isinstance(accounts, str):  # a lone "123456" is a Sequence[str] of digits
            accounts = (accounts,)
        unique = tuple(dict.fromkeys(str(a) for a in accounts))
        if not unique or not all(unique):
            raise ValueError("the emulator needs at least one non-empty account")
        self._token = token
        self._accounts = unique
        self._host = host
        self._requested_port = port
        self._uid = uid
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._file_numbers = itertools.count(FILE_ID_BASE + 1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stopping = threading.Event()
        self._held = 0

    def __repr__(self) -> str:  # never shows the token
        where = self.base_url if self._port is not None else "not started"
        return f"<Emulator {where} accounts={list(self._accounts)}>"

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve from a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if self._stopping.is_set():
            raise RuntimeError("a stopped emulator cannot be restarted; create a new one")
        server = _Server((self._host, self._requested_port), self)
        self._server = server
        self._port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},  # how long stop() may wait
            name=f"minimax-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("emulator serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and release the port. Idempotent."""
        server, thread = self._server, self._thread
        self._stopping.set()  # also cuts "slow" faults short
        if server is None or thread is None:
            return
        self._server = None
        self._thread = None
        server.shutdown()
        server.server_close()
        server.close_all_connections()
        thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- addresses --------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (the wildcard addresses are shown as loopback)."""
        host = self._host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the client uses as ``api.base_url``, e.g. ``http://127.0.0.1:PORT/v1/minimax``."""
        return self.origin + API_PREFIX

    @property
    def accounts(self) -> tuple[str, ...]:
        return self._accounts

    @property
    def uid(self) -> str:
        return self._uid

    # -- held answers -----------------------------------------------------------------------------------

    def _hold(self, delay: float) -> None:
        """A "slow" fault: the body has arrived; keep the answer back for `delay` seconds."""
        with self._changed:
            self._held += 1
            self._changed.notify_all()
        try:
            self._stopping.wait(delay)
        finally:
            with self._changed:
                self._held -= 1
                self._changed.notify_all()

    @property
    def held(self) -> int:
        """How many requests are being held by a "slow" fault right now (their bodies fully received)."""
        with self._lock:
            return self._held

    def wait_for_held(self, n: int, timeout: float) -> None:
        """Wait until at least `n` answers are being held back by "slow" faults."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= n, timeout):
                raise TimeoutError(f"{self._held} requests held after {timeout} s, expected {n}")

    # -- faults -----------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault (a copy is kept: the caller's object is not mutated)."""
        with self._lock:
            self._faults.append(dataclasses.replace(fault))

    def clear_faults(self) -> int:
        """Drop every pending fault; returns how many there were."""
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    @property
    def faults(self) -> list[Fault]:
        """Pending faults, FIFO order, with their remaining ``times``."""
        with self._lock:
            return [dataclasses.replace(f) for f in self._faults]

    # -- records ----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request that reached the upload handler, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def uploads(self) -> list[RecordedRequest]:
        """Only the successful uploads: 200 answers that carried a fileID."""
        with self._lock:
            return [r for r in self._requests if r.status == 200 and r.file_id is not None]

    def clear_requests(self) -> int:
        """Forget the recorded requests; returns how many there were."""
        with self._lock:
            count = len(self._requests)
            self._requests.clear()
            return count

    def wait_for_uploads(self, n: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``n`` successful uploads are recorded; return them all.

        Raises TimeoutError after ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._count_uploads() >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} successful upload(s) within {timeout}s, got "
                    f"{self._count_uploads()}; requests so far: {self._summary()}"
                )
            return [r for r in self._requests if r.status == 200 and r.file_id is not None]

    def wait_for_requests(self, n: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``n`` requests (of any outcome) are recorded; return them all.

        Raises TimeoutError after ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} request(s) within {timeout}s, got {len(self._requests)}: "
                    f"{self._summary()}"
                )
            return list(self._requests)

    # -- helpers for the handler (called from server threads) --------------------------------------------

    def _count_uploads(self) -> int:  # caller holds the lock
        return sum(1 for r in self._requests if r.status == 200 and r.file_id is not None)

    def _summary(self) -> str:  # caller holds the lock
        if not self._requests:
            return "none"
        shown = [
            f"{r.status or 'no answer'}{f' ({r.fault})' if r.fault else ''} account={r.account}"
            for r in self._requests[-10:]
        ]
        more = len(self._requests) - len(shown)
        return ("... " if more else "") + ", ".join(shown)

    def _token_matches(self, authorization: str | None) -> bool:
        return authorization == f"Bearer {self._token}"

    def _resolve_account(self, account: str | None) -> tuple[str | None, str | None]:
        """(account, None) when usable, else (None, error message)."""
        if account is None:
            if len(self._accounts) == 1:
                return self._accounts[0], None
            return None, "account is required when several accounts are configured"
        if account not in self._accounts:
            return None, f"Account {account} not found"
        return account, None

    def _take_fault(self, account: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.account is not None and fault.account != account:
                    continue
                taken = dataclasses.replace(fault)
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        del self._faults[index]
                return taken
        return None

    def _next_file_number(self) -> int:
        with self._lock:
            return next(self._file_numbers)

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()
        logger.info(
            "upload account=%s type=%s size=%d -> %s%s",
            request.account,
            request.content_type,
            request.size,
            request.status or "no answer",
            f" [fault: {request.fault}]" if request.fault else "",
        )


def serve_forever(*, token: str, accounts: Sequence[str], port: int, host: str = "127.0.0.1") -> None:
    """Run the emulator in the foreground until SIGINT (KeyboardInterrupt) or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # no-op if logging is configured
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous: Any = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        with Emulator(token=token, accounts=accounts, host=host, port=port, poll_interval=0.5) as emulator:
            logger.info("MiniMax API emulator listening on %s", emulator.base_url)
            logger.info(
                "accounts: %s%s",
                ", ".join(emulator.accounts),
                " (the account parameter may be omitted)"
                if len(emulator.accounts) == 1
                else " (the account parameter is required)",
            )
            logger.info("control endpoints: %s/_emulator/{requests,uploads,faults}", emulator.origin)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            logger.info("emulator stopping")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
