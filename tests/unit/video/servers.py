"""A real HTTP server on 127.0.0.1 for the video tests: each request is recorded, then answered by the
test's own `Behaviour`; stopped (its threads joined) by the context manager."""

from __future__ import annotations

import gc
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


Behaviour = Callable[["Handler", "Server"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    timeout = 5  # an idle kept-alive connection cannot hold the server's shutdown for long
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            Seen(self.command, self.path, dict(self.headers.items()), body, self.client_address[1])
        )
        self.server.behaviour(self, self.server)

    do_GET = do_POST = _handle

    def reply(self, status: int, body: bytes | dict[str, Any] | list[Any], **headers: str) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def cut(self) -> None:
        """End the connection without a word (the request was read: it reached the server)."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(2)

    def stream(self, chunk: bytes, *, total: int | None, declared: int | None, pause: float = 0.0) -> None:
        """200 and `chunk` again and again: `total` bytes (None: until the client goes or the test ends),
        announcing `declared` as Content-Length (None: no length, the end is the connection's)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if declared is not None:
            self.send_header("Content-Length", str(declared))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.stream_body(chunk, total=total, pause=pause)

    def stream_body(self, chunk: bytes, *, total: int | None = None, pause: float = 0.0) -> None:
        sent = 0
        try:
            while (total is None or sent < total) and not self.server.stop.is_set():
                piece = chunk if total is None else chunk[: total - sent]
                self.wfile.write(piece)
                sent += len(piece)
                self.server.streamed = sent
                if pause:
                    self.server.stop.wait(pause)
        except OSError:
            pass  # the client went away: what a bounded reader does


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close joins every handler thread: none outlives the test

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = behaviour
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self.streamed = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1/minimax"


@contextmanager
def serving(behaviour: Behaviour) -> Iterator[Server]:
    server = Server(behaviour)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http")
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        thread.join()
        server.server_close()


def open_sockets_to(port: int) -> list[socket.socket]:
    """The sockets of this process still open to `port` on loopback."""
    found = []
    for thing in gc.get_objects():
        if isinstance(thing, socket.socket) and thing.fileno() != -1:
            try:
                if thing.getpeername()[1] == port:
                    found.append(thing)
            except OSError:
                pass
    return found
