"""A small HTTP server for a local listener (the metrics, the status page) that no client can exhaust.

One thread, capped connections, a deadline per request head and answer, and no connection kept while
descriptors run short; a file body (`FileBody`) is sent from its descriptor as the client takes it, a
capped number at once. See docs/architecture.md, 'Telling'.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from watcher.disk import descriptors

log = logging.getLogger("watcher")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_HEAD = 8192
ACCEPTS_PER_TURN = 64
OUT_OF_DESCRIPTORS_PAUSE = 1.0
_OUT_OF_DESCRIPTORS = descriptors.OUT_OF_DESCRIPTORS | {errno.ENOBUFS, errno.ENOMEM}
FILE_CHUNK = 256 << 10  # bytes handed to sendfile at a time


class FileBody:
    """An answer's body from an open file: `length` bytes from `offset` of `fd` (owned: closed by
    `close`). The listener sends it with sendfile as the client takes it, never reading it whole."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd, self.offset, self.length = fd, offset, length
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        """The bytes in chunks, for a caller that is not the listener (a plain WSGI server, a test)."""
        offset, end = self.offset, self.offset + self.length
        while offset < end:
            chunk = os.pread(self.fd, min(FILE_CHUNK, end - offset), offset)
            if not chunk:
                return
            offset += len(chunk)
            yield chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)


class _Connection:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.head = bytearray()
        self.answer: memoryview | None = None
        self.file: FileBody | None = None  # sent once `answer` (its head) is


class Listener:
    """Serves `app` on (`host`, `port`) from a thread of its own once `start`ed; `stop` ends it.

    The constructor binds the port: OSError (in use, not an address of this machine, not permitted)
    comes from there, before any thread starts.
    """

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApp,
        *,
        name: str = "listener",
        max_connections: int = 16,
        request_seconds: float = 5.0,
        response_seconds: float = 10.0,
        reserve: int = 64,
        max_files: int = 4,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.name = name
        self._max_files = max_files
        self._files = 0  # file bodies being sent
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers)  # on the listener's own answers too
        self._app = app
        self._max = max_connections
        self._request_seconds = request_seconds
        self._response_seconds = response_seconds
        self._reserve = reserve
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(128)
            self._sock.setblocking(False)
        except OSError:
            self._sock.close()
            raise
        self.host, self.port = host, int(self._sock.getsockname()[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._connections: dict[socket.socket, _Connection] = {}
        self._accepting = False
        self._resume_at = 0.0
        self._told_out_of_descriptors = 0.0
        self._stopping = False
        self._stop_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Listener:
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._listen(True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and free the port before returning; may be called more than once."""
        with self._stop_lock:
            if self._stopping:
                return
            self._stopping = True
        if self._thread.is_alive():
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass  # its buffer is full: a wake-up is already waiting
            self._thread.join()
        else:
            self._close_all()

    # ---- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                now = time.monotonic()
                for key, events in self._selector.select(self._timeout(now)):
                    if key.fileobj is self._sock:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wake()
                    else:
                        self._serve(key.data, events)
                self._expire(time.monotonic())
        except Exception as exc:  # a bug here must not end the agent; the listener stops serving
            log.error("%s: stopped serving: %s", self.name, exc)
        finally:
            self._close_all()

    def _timeout(self, now: float) -> float | None:
        deadlines = [c.deadline for c in self._connections.values()]
        if not self._accepting:
            deadlines.append(self._resume_at)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _expire(self, now: float) -> None:
        for connection in [c for c in self._connections.values() if c.deadline <= now]:
            self._close(connection)  # too slow to ask, or to take the answer
        if not self._accepting and now >= self._resume_at:
            self._listen(True)

    def _listen(self, on: bool) -> None:
        if on and not self._accepting:
            self._selector.register(self._sock, selectors.EVENT_READ)
        elif not on and self._accepting:
            self._selector.unregister(self._sock)
        self._accepting = on

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except BlockingIOError:
            pass

    # ---- connections -----------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, _ = self._sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._pause(exc)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            if len(self._connections) >= self._max or not self._descriptors_to_spare(sock):
                _turn_away(sock, self._plain("503 Service Unavailable", b""))
                continue
            sock.setblocking(False)
            connection = _Connection(sock, time.monotonic() + self._request_seconds)
            self._connections[sock] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _descriptors_to_spare(self, accepted: socket.socket) -> bool:
        soft = descriptors.limit()
        if soft is None:
            return True
        # accept() gives the lowest free number: every one below it is in use.
        if soft - accepted.fileno() <= self._reserve:
            return False
        used = descriptors.in_use()
        return used is None or soft - used > self._reserve

    def _pause(self, exc: OSError) -> None:
        now = time.monotonic()
        self._listen(False)
        self._resume_at = now + OUT_OF_DESCRIPTORS_PAUSE
        if now - self._told_out_of_descriptors >= 60:
            self._told_out_of_descriptors = now
            log.warning(
                "%s: cannot accept a connection: %s; trying again in %.0f s",
                self.name,
                exc.strerror,
                OUT_OF_DESCRIPTORS_PAUSE,
            )

    def _serve(self, connection: _Connection, events: int) -> None:
        try:
            if connection.answer is None:
                self._read(connection)
            else:
                self._write(connection)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(connection)  # reset by the client

    def _read(self, connection: _Connection) -> None:
        data = connection.sock.recv(4096)
        if not data:
            self._close(connection)
            return
        connection.head += data
        end = _end_of_head(connection.head)
        if end == -1 or end > MAX_HEAD:
            if len(connection.head) > MAX_HEAD:
                self._answer(
                    connection,
                    self._plain("431 Request Header Fields Too Large", b"request head too large\n"),
                )
            return
        answer, file = self._respond(bytes(connection.head[:end]))
        if file is not None:
            self._files += 1
            connection.file = file
        self._answer(connection, answer)

    def _answer(self, connection: _Connection, answer: bytes) -> None:
        connection.answer = memoryview(answer)
        connection.deadline = time.monotonic() + self._response_seconds
        self._selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
        self._write(connection)

    def _write(self, connection: _Connection) -> None:
        assert connection.answer is not None
        if connection.answer:
            sent = connection.sock.send(connection.answer)
            connection.answer = connection.answer[sent:]
            if connection.answer:
                return
        file = connection.file
        if file is not None and file.length > 0:
            sent = os.sendfile(connection.sock.fileno(), file.fd, file.offset, min(FILE_CHUNK, file.length))
            if sent > 0:
                file.offset, file.length = file.offset + sent, file.length - sent
                # A deadline per chunk taken, not per answer: a large video on a slow link takes long.
                connection.deadline = time.monotonic() + self._response_seconds
                if file.length > 0:
                    return
        self._close(connection)  # all sent (or the file is shorter than it was: the client sees it cut)

    def _close(self, connection: _Connection) -> None:
        if self._connections.pop(connection.sock, None) is not None:
            self._selector.unregister(connection.sock)
        if connection.file is not None:
            connection.file.close()
            connection.file = None
            self._files -= 1
        connection.sock.close()

    def _close_all(self) -> None:
        for connection in list(self._connections.values()):
            self._close(connection)
        self._selector.close()
        self._sock.close()
        self._wake_r.close()
        self._wake_w.close()

    # ---- HTTP ------------------------------------------------------------------------------------

    def _respond(self, head: bytes) -> tuple[bytes, FileBody | None]:
        lines = head.decode("latin-1").splitlines()
        parts = lines[0].split() if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return self._plain("400 Bad Request", b"bad request line\n"), None
        method, target, version = parts
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.host,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": version,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().upper().replace("-", "_")
                if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                    key = "HTTP_" + key
                environ[key] = value.strip()
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [status, headers]

        file: FileBody | None = None
        try:
            result = self._app(environ, start_response)
            if isinstance(result, FileBody):
                file, body, length = result, b"", result.length
            else:
                body = b"".join(result)
                length = len(body)
        except Exception as exc:
            log.error("%s: answering %s failed: %s", self.name, path[:100], exc)
            return self._plain("500 Internal Server Error", b"internal error\n"), None
        if file is not None and (method == "HEAD" or self._files >= self._max_files):
            file.close()
            if method != "HEAD":
                return self._plain("503 Service Unavailable", b"busy sending files; try again\n"), None
            file = None
        status, headers = started
        out = [f"HTTP/1.1 {status}"]
        out += [f"{k}: {v}" for k, v in headers if k.lower() not in ("content-length", "connection")]
        out += [f"Content-Length: {length}", "Connection: close", "", ""]
        return "\r\n".join(out).encode("latin-1") + (b"" if method == "HEAD" else body), file

    def _plain(self, status: str, body: bytes) -> bytes:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{self._headers}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode("latin-1") + body


def _end_of_head(head: bytearray) -> int:
    for mark in (b"\r\n\r\n", b"\n\n"):
        found = head.find(mark)
        if found != -1:
            return found
    return -1


def _turn_away(sock: socket.socket, busy: bytes) -> None:
    try:
        sock.setblocking(False)
        sock.send(busy)
    except OSError:
        pass
    sock.close()
