"""`watcher.report.listener`: a capped, timed-out HTTP server, over real sockets."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from watcher.report.listener import MAX_HEAD, FileBody, Listener

SLACK = 20.0  # generous: the machine may be loaded; the server's own limits are far shorter


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ['QUERY_STRING']}".encode()]


@pytest.fixture
def make() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def start(**kw: Any) -> Listener:
        listener = Listener("127.0.0.1", 0, hello, **kw).start()
        made.append(listener)
        return listener

    yield start
    for listener in made:
        listener.stop()


def ask(listener: Listener, request: bytes = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") -> bytes:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=SLACK) as s:
        s.sendall(request)
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    s.settimeout(SLACK)
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def turned_away(listener: Listener) -> bool:
    """Answered 503 and closed at once (or reset: the request may reach a socket closed already)."""
    try:
        return ask(listener).startswith(b"HTTP/1.1 503 ")
    except ConnectionResetError:
        return True


def test_a_request_is_answered_and_the_connection_closed(make: Callable[..., Listener]) -> None:
    answer = ask(make())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in answer and b"Content-Length: 16\r\n" in answer
    assert answer.endswith(b"\r\n\r\nGET /metrics x=1")
    head = ask(make(), b"HEAD / HTTP/1.0\n\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
    assert ask(make(), b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_beyond_the_cap_a_connection_is_turned_away_at_once(make: Callable[..., Listener]) -> None:
    listener = make(max_connections=3, request_seconds=SLACK)
    idle = [socket.create_connection(("127.0.0.1", listener.port), timeout=SLACK) for _ in range(3)]
    try:
        assert turned_away(listener)
        assert listener.connections == 3
    finally:
        for s in idle:
            s.close()


def test_an_idle_or_trickling_client_is_dropped_at_its_deadline(make: Callable[..., Listener]) -> None:
    listener = make(request_seconds=0.5)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=SLACK) as idle:
        assert read_all(idle) == b""  # closed by the server, without an answer
    with socket.create_connection(("127.0.0.1", listener.port), timeout=SLACK) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        slow.settimeout(0.05)
        gone = False
        for _ in range(int(SLACK / 0.05)):  # a byte every 50 ms: every read alone is quick
            try:
                slow.sendall(b"X")
                gone = slow.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:
                gone = True
            if gone:
                break
        assert gone, "a slowloris client kept its connection past the whole-request deadline"


def test_a_head_too_large_is_refused(make: Callable[..., Listener]) -> None:
    head = b"GET / HTTP/1.1\r\nX: "
    answer = ask(make(), head + b"a" * (MAX_HEAD + 1 - len(head)))  # its end never comes
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_no_connection_is_kept_while_descriptors_run_short(make: Callable[..., Listener]) -> None:
    listener = make(reserve=1 << 30)  # more than any limit: never enough spare
    assert turned_away(listener)
    assert listener.connections == 0


def test_stop_frees_the_port_at_once(make: Callable[..., Listener]) -> None:
    listener = make()
    port = listener.port
    with socket.create_connection(("127.0.0.1", port), timeout=SLACK):
        listener.stop()
        listener.stop()
    again = Listener("127.0.0.1", port, hello).start()
    try:
        assert ask(again).startswith(b"HTTP/1.1 200 ")
    finally:
        again.stop()


# ---- file bodies -----------------------------------------------------------------------------------


def file_app(path: str, offset: int = 0) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        fd = os.open(path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return FileBody(fd, offset, size - offset)

    return app


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def test_a_file_body_is_sent_from_its_descriptor_and_closed(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)  # several sendfile chunks
    (tmp_path / "big").write_bytes(data)
    listener = Listener("127.0.0.1", 0, file_app(str(tmp_path / "big"), offset=5)).start()
    try:
        before = len(os.listdir("/proc/self/fd"))
        answer = ask(listener)
        assert f"Content-Length: {len(data) - 5}\r\n".encode() in answer
        assert body_of(answer) == data[5:]
        head = ask(listener, b"HEAD / HTTP/1.1\r\n\r\n")
        assert body_of(head) == b"" and f"Content-Length: {len(data) - 5}\r\n".encode() in head
        wait_for(lambda: len(os.listdir("/proc/self/fd")) <= before, 5, "the file's descriptor closed")
    finally:
        listener.stop()
    body = FileBody(
        os.open(tmp_path / "big", os.O_RDONLY), 1, 10
    )  # read by a caller that is not the listener
    assert b"".join(body) == data[1:11]
    body.close()


def test_file_bodies_beyond_their_cap_are_turned_away_and_other_answers_go_on(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (32 << 20))  # more than the socket buffers take at once

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/file":
            return file_app(str(tmp_path / "big"))(environ, start_response)
        return hello(environ, start_response)

    listener = Listener(
        "127.0.0.1", 0, app, max_files=1, headers=[("X-Content-Type-Options", "nosniff")]
    ).start()
    try:
        reader = socket.create_connection(("127.0.0.1", listener.port))
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"GET /file HTTP/1.1\r\n\r\n")  # and never reads
        wait_for(lambda: listener.connections == 1, 5, "the reader's connection")

        def busy() -> bool:
            return ask(listener, b"GET /file HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503 ")

        wait_for(busy, 5, "a second file answer turned away")
        refused = ask(listener, b"GET /file HTTP/1.1\r\n\r\n")
        assert b"X-Content-Type-Options: nosniff\r\n" in refused  # the listener's own answers carry them
        assert ask(listener).startswith(b"HTTP/1.1 200 OK")
        reader.close()
    finally:
        listener.stop()
