"""`UploadClient` against a real hostile HTTP server on loopback, for what the emulator cannot do.

Each test runs a small socket server on 127.0.0.1 whose connections are served by a "behaviour": trickle
the answer one byte at a time, never answer, stop reading the body, or answer 200/4xx with fields no
real API would send. Deadlines are shortened through the client's constructor so each test takes
seconds; the assertions on elapsed time are what fails on a client that waits for as long as the
server keeps the connection alive.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.images import png_bytes, sha256
from watcher.agent import STALLED_AFTER
from watcher.core.media import MAX_UPLOAD_BYTES
from watcher.core.outcome import (
    MAX_ERROR_CHARS,
    FailureClass,
    UploadFailure,
    UploadOutcome,
    UploadSuccess,
    is_valid_file_id,
)
from watcher.upload.client import UploadClient

TOKEN = "user:1-hostile"
GOOD_FILE_ID = "user:1-minimax:123456-file:380000000000001"
# Shortened for the tests: how long the server may take to answer, or to take a chunk of the body.
DEADLINE = 1.0
# What a loaded 2-core machine may add on top of a deadline before the client gives up.
SLACK = 3.0
# How long the server waits between two bytes when it trickles.
TRICKLE_INTERVAL = 0.05

Behaviour = Callable[[socket.socket, "HostileServer"], None]


class HostileServer:
    """A TCP server on 127.0.0.1 that hands each accepted connection to `behaviour` on its own thread."""

    def __init__(
        self, behaviour: Behaviour, *, receive_buffer: int | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self._behaviour = behaviour
        self._tls = tls
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Set before listen() so accepted sockets inherit it: the client's body backs up quickly.
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port: int = self._listener.getsockname()[1]
        self.stop = threading.Event()
        # Set when a connection saw the client end it (end of stream, or a failed send).
        self.client_gone = threading.Event()
        # Set by a test to let a paused behaviour carry on.
        self.resume = threading.Event()
        self.requests: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/minimax"

    def __enter__(self) -> HostileServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.resume.set()
        # shutdown() wakes the threads blocked in accept() or recv(); close() alone would not.
        for sock in [self._listener, *self._connections]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._listener.close()
        for thread in [self._accepter, *self._threads]:
            thread.join(5)
        for conn in self._connections:
            conn.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="hostile-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            self._behaviour(conn, self)
        except OSError:
            self.client_gone.set()

    # What behaviours are made of.

    def read_head(self, conn: socket.socket) -> tuple[bytes, int]:
        """The request line and headers, and the Content-Length they announce."""
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(1)
            if not data:
                raise ConnectionError("the client closed before the end of its headers")
            head += data
        self.requests.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head, length

    def read_request(self, conn: socket.socket) -> bytes:
        """The whole request body."""
        _, length = self.read_head(conn)
        body = bytearray()
        while len(body) < length:
            data = conn.recv(min(1 << 16, length - len(body)))
            if not data:
                raise ConnectionError("the client closed before the end of its body")
            body += data
        return bytes(body)

    def trickle(self, conn: socket.socket, data: bytes) -> None:
        """Send `data` one byte per TRICKLE_INTERVAL, until done, stopped, or the client is gone."""
        for index in range(len(data)):
            if self._client_ended(conn):
                return
            conn.sendall(data[index : index + 1])
            if self.stop.wait(TRICKLE_INTERVAL):
                return
        self.wait_for_client_end(conn)

    def wait_for_client_end(self, conn: socket.socket) -> None:
        """Read and discard whatever comes, until the client ends the connection or the test stops."""
        while not self.stop.is_set():
            if self._client_ended(conn, timeout=0.1):
                return

    def _client_ended(self, conn: socket.socket, timeout: float = 0.0) -> bool:
        readable, _, _ = select.select([conn], [], [], timeout)
        if readable and not conn.recv(1 << 16):
            self.client_gone.set()
            return True
        return False


def answer(status: int, payload: object, reason: str = "OK") -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answering(status: int, payload: object) -> Behaviour:
    """A server that reads the request, then answers at once (over one connection, any number of times)."""

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        while not server.stop.is_set():
            server.read_request(conn)
            conn.sendall(answer(status, payload))

    return behaviour


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes())
    return path


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    """Larger than the socket buffers on both sides together, so a server that stops reading blocks it.

    The server's receive buffer is set small; the client's send buffer grows up to tcp_wmem's maximum.
    """
    try:
        send_buffer_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        send_buffer_max = 4 << 20
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes() + os.urandom(max(16 << 20, 2 * send_buffer_max + (4 << 20))))
    return path


def hostile_client(server: HostileServer, **overrides: float) -> UploadClient:
    # The read timeout is long on purpose: it is not what may end these attempts.
    options: dict[str, float] = {
        "connect_timeout": 5.0,
        "read_timeout": 60.0,
        "answer_deadline": DEADLINE,
        "answer_seconds_per_gb": 0.0,
        "send_stall_timeout": 30.0,
    }
    options.update(overrides)
    return UploadClient(
        server.base_url,
        TOKEN,
        connect_timeout=options["connect_timeout"],
        read_timeout=options["read_timeout"],
        answer_deadline=options["answer_deadline"],
        answer_seconds_per_gb=options["answer_seconds_per_gb"],
        send_stall_timeout=options["send_stall_timeout"],
    )


def post(client: UploadClient, path: Path, progress: list[int] | None = None) -> tuple[UploadOutcome, float]:
    """The outcome of uploading `path`, and how many seconds it took."""
    fd = os.open(path, os.O_RDONLY)
    started = time.monotonic()
    try:
        outcome = client.post_file(
            fd, os.fstat(fd).st_size, "image/png", "123456", progress.append if progress is not None else None
        )
    finally:
        os.close(fd)
    return outcome, time.monotonic() - started


def upload_to(behaviour: Behaviour, path: Path) -> UploadOutcome:
    with HostileServer(behaviour) as server:
        client = hostile_client(server)
        try:
            outcome, _ = post(client, path)
        finally:
            client.close()
    return outcome


def assert_timed_out(outcome: UploadOutcome, message: str) -> None:
    assert isinstance(outcome, UploadFailure), outcome
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert outcome.code == "timeout"
    assert message in outcome.error, outcome.error
    assert "retried" in outcome.error


# Item 11: every attempt ends within its deadline, whatever the server does.


def test_status_line_and_headers_trickled_byte_by_byte_end_at_the_deadline(png_file: Path) -> None:
    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        # Headers that would take minutes to arrive, each byte well within the read timeout.
        server.trickle(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"." * 5000)

    with HostileServer(behaviour) as server:
        client = hostile_client(server)
        try:
            outcome, elapsed = post(client, png_file)
        finally:
            client.close()
        assert_timed_out(outcome, f"the API took longer than {DEADLINE:g} s to answer")
        assert elapsed < DEADLINE + SLACK
        assert server.client_gone.wait(SLACK), "the client kept the connection open"


def test_an_answer_body_trickled_byte_by_byte_ends_at_the_deadline(png_file: Path) -> None:
    # A valid answer that would succeed after ~10 s: past the deadline it is void all the same.
    payload = json.dumps({"fileID": GOOD_FILE_ID, "ossPath": "https://cdn.example/a.png"}).encode()
    payload += b" " * (200 - len(payload))

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        conn.sendall(head.encode())
        server.trickle(conn, payload)

    with HostileServer(behaviour) as server:
        client = hostile_client(server)
        try:
            outcome, elapsed = post(client, png_file)
        finally:
            client.close()
        assert_timed_out(outcome, f"the API took longer than {DEADLINE:g} s to answer")
        assert elapsed < DEADLINE + SLACK
        assert server.client_gone.wait(SLACK), "the client kept the connection open"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    command += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", str(key)]
    command += ["-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


def test_headers_trickled_over_tls_end_at_the_deadline(
    png_file: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real API is HTTPS: the deadline must cut a TLS connection just as well.
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        server.trickle(conn, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 5000)

    with HostileServer(behaviour, tls=context) as server:
        client = hostile_client(server)
        try:
            outcome, elapsed = post(client, png_file)
        finally:
            client.close()
        assert server.requests, "the TLS handshake failed: the request never arrived"
        assert_timed_out(outcome, f"the API took longer than {DEADLINE:g} s to answer")
        assert elapsed < DEADLINE + SLACK
        assert server.client_gone.wait(SLACK), "the client kept the connection open"


def test_a_server_that_takes_the_request_and_never_answers_ends_at_the_deadline(png_file: Path) -> None:
    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.wait_for_client_end(conn)

    with HostileServer(behaviour) as server:
        client = hostile_client(server)
        try:
            outcome, elapsed = post(client, png_file)
        finally:
            client.close()
        assert_timed_out(outcome, f"the API took longer than {DEADLINE:g} s to answer")
        assert elapsed < DEADLINE + SLACK
        assert server.client_gone.wait(SLACK), "the client kept the connection open"


def test_a_server_that_stops_reading_the_body_ends_after_the_send_stall_timeout(big_file: Path) -> None:
    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.read_head(conn)
        server.resume.wait()  # the body backs up in the socket buffers, then the client's send blocks
        server.wait_for_client_end(conn)

    with HostileServer(behaviour, receive_buffer=1 << 16) as server:
        # A connect timeout this short would also have ended the send, with an unclear network error.
        client = hostile_client(server, send_stall_timeout=DEADLINE, connect_timeout=1.0)
        progress: list[int] = []
        try:
            outcome, elapsed = post(client, big_file, progress)
        finally:
            client.close()
        assert_timed_out(outcome, f"the API stopped taking the upload for {DEADLINE:g} s")
        assert elapsed < 1.0 + DEADLINE + SLACK
        size = big_file.stat().st_size
        assert progress and progress[-1] < size  # it did get stuck partway
        server.resume.set()
        # Draining now reaches the end of the stream only if the client closed the connection.
        assert server.client_gone.wait(SLACK), "the client kept the connection open"


def test_a_slow_but_steady_reader_is_not_cut_off_and_progress_is_reported_per_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    data = png_bytes() + os.urandom(6 << 20)
    path.write_bytes(data)
    rate = 4 << 20  # bytes per second

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        _, length = server.read_head(conn)
        received = bytearray()
        started = time.monotonic()
        while len(received) < length:
            # Read at `rate`: each 1 MiB chunk then takes longer to send than the connect timeout.
            ahead = len(received) / rate - (time.monotonic() - started)
            if ahead > 0 and server.stop.wait(ahead):
                return
            chunk = conn.recv(min(1 << 16, length - len(received)))
            if not chunk:
                return
            received += chunk
        file_id = GOOD_FILE_ID if sha256(bytes(received)) == sha256(data) else "wrong bytes"
        conn.sendall(answer(200, {"fileID": file_id, "ossPath": "https://cdn.example/big.png"}))
        server.wait_for_client_end(conn)

    with HostileServer(behaviour, receive_buffer=1 << 16) as server:
        client = hostile_client(server, connect_timeout=0.1, send_stall_timeout=30.0)
        progress: list[int] = []
        try:
            outcome, _ = post(client, path, progress)
        finally:
            client.close()
    assert isinstance(outcome, UploadSuccess), outcome
    assert outcome.file_id == GOOD_FILE_ID
    assert outcome.sha256 == sha256(data)
    assert progress == sorted(progress) and progress[-1] == len(data)
    assert len(progress) >= len(data) >> 20  # at least once per 1 MiB chunk: the watchdog sees it move


def test_the_longest_answer_deadline_keeps_the_systemd_watchdog_fed() -> None:
    # The worker reports no progress while it waits for the answer; the agent stops the watchdog pings
    # once no progress was seen for STALLED_AFTER, so a legitimate wait must end before that.
    client = UploadClient("http://127.0.0.1:9/v1/minimax", TOKEN)
    try:
        assert client.answer_limit(MAX_UPLOAD_BYTES) < STALLED_AFTER
        assert client.answer_limit(1 << 20) >= 120  # and even a small file has minutes
    finally:
        client.close()


def test_after_a_deadline_the_same_client_uploads_again(png_file: Path) -> None:
    attempts: list[int] = []

    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        while not server.stop.is_set():
            server.read_request(conn)
            attempts.append(1)
            if len(attempts) == 1:
                server.wait_for_client_end(conn)  # the first attempt never gets an answer
                return
            conn.sendall(answer(200, {"fileID": GOOD_FILE_ID, "ossPath": "https://cdn.example/a.png"}))

    with HostileServer(behaviour) as server:
        client = hostile_client(server)
        try:
            first, _ = post(client, png_file)
            second, _ = post(client, png_file)
        finally:
            client.close()
    assert_timed_out(first, "to answer")
    assert isinstance(second, UploadSuccess), second
    assert second.file_id == GOOD_FILE_ID


# Item 13: nothing the server sends is stored unchecked or unbounded.


@pytest.mark.parametrize(
    "file_id",
    [
        "user:1-minimax:123456-file:" + "1" * 100_000,  # 100 KB: would make the sidecar unreadable
        "x" * 100,
        "user:1-minimax:123456-file:",
        "user:1-minimax:abc-file:380000000000001",
        "user:1-minimax:123456-file:38\n0000",
        " user:1-minimax:123456-file:380000000000001",
        "user:1-minimax:123456-file:380000000000001/../../etc",
    ],
    ids=["100KB", "garbage", "empty-id", "letters-in-account", "newline", "leading-space", "path"],
)
def test_a_200_with_a_malformed_file_id_is_a_temporary_failure(png_file: Path, file_id: str) -> None:
    outcome = upload_to(answering(200, {"fileID": file_id, "ossPath": "https://cdn.example/a.png"}), png_file)
    assert isinstance(outcome, UploadFailure), outcome
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert outcome.code == 200
    assert "malformed fileID" in outcome.error
    assert len(outcome.error) <= MAX_ERROR_CHARS
    assert "\n" not in outcome.error


@pytest.mark.parametrize(
    "file_id",
    [
        GOOD_FILE_ID,
        "user:12345-minimax:987654321-file:7",
        "user:12345-minimax:987654321-file:abc_DEF_123",
    ],
)
def test_a_200_with_a_file_id_of_the_documented_shape_succeeds(png_file: Path, file_id: str) -> None:
    outcome = upload_to(answering(200, {"fileID": file_id, "ossPath": "https://cdn.example/a.png"}), png_file)
    assert isinstance(outcome, UploadSuccess), outcome
    assert outcome.file_id == file_id
    assert outcome.oss_path == "https://cdn.example/a.png"
    assert is_valid_file_id(outcome.file_id)


@pytest.mark.parametrize(
    "oss_path",
    [
        "https://cdn.example/" + "a" * 100_000,
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://cdn.example/a\n.png",
        "https://cdn.example/a b.png",
        "https:///no-host.png",
        12345,
        None,
    ],
    ids=["100KB", "javascript", "file", "newline", "space", "no-host", "number", "null"],
)
def test_a_bad_oss_path_is_dropped_and_the_file_id_kept(png_file: Path, oss_path: object) -> None:
    outcome = upload_to(answering(200, {"fileID": GOOD_FILE_ID, "ossPath": oss_path}), png_file)
    assert isinstance(outcome, UploadSuccess), outcome
    assert outcome.file_id == GOOD_FILE_ID
    assert outcome.oss_path == ""


def test_an_error_message_of_100_kb_with_control_characters_is_cut_and_cleaned(png_file: Path) -> None:
    message = "\x1b[2J\x1b]0;pwned\x07Bad\u202e request\r\nsecond line\ud800" + "x" * 100_000
    outcome = upload_to(answering(400, {"error": message, "code": 400}), png_file)
    assert isinstance(outcome, UploadFailure), outcome
    assert outcome.failure_class is FailureClass.PERMANENT
    assert outcome.code == 400
    assert outcome.error.startswith("HTTP 400: [2J]0;pwnedBad request second line")
    assert len(outcome.error) <= MAX_ERROR_CHARS
    assert outcome.error.isprintable()
    outcome.error.encode("utf-8")  # no lone surrogate left to break a log line or a record


def test_a_long_reason_phrase_is_cut_and_cleaned(png_file: Path) -> None:
    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        reason = "Service\tUnavailable\x7f" + "!" * 10_000
        conn.sendall(f"HTTP/1.1 503 {reason}\r\nContent-Length: 0\r\n\r\n".encode("latin-1"))
        server.wait_for_client_end(conn)

    outcome = upload_to(behaviour, png_file)
    assert isinstance(outcome, UploadFailure), outcome
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert outcome.code == 503
    assert outcome.error.startswith("HTTP 503 Service Unavailable!")
    assert len(outcome.error) <= 120
    assert outcome.error.isprintable()


def test_a_garbage_status_line_gives_a_short_clean_network_error(png_file: Path) -> None:
    def behaviour(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        conn.sendall(b"\x1b[31mNOT-HTTP " + b"z" * 60_000 + b"\r\n\r\n")
        server.wait_for_client_end(conn)

    outcome = upload_to(behaviour, png_file)
    assert isinstance(outcome, UploadFailure), outcome
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert outcome.code == "network"
    assert len(outcome.error) <= 250
    assert outcome.error.isprintable()


def set_proxy_variables(monkeypatch: pytest.MonkeyPatch, proxy: str, no_proxy: str | None) -> None:
    """Both spellings of each variable: the lower-case one wins where both are set."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        if no_proxy is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, no_proxy)


def post_behind_proxy(png_file: Path) -> UploadOutcome:
    """One upload to an API name that does not resolve: only the environment's proxy can carry it."""
    client = UploadClient("http://api.invalid/v1/minimax", TOKEN, connect_timeout=5.0, read_timeout=10.0)
    try:
        outcome, _ = post(client, png_file)
    finally:
        client.close()
    return outcome


def test_an_http_proxy_from_the_environment_carries_the_upload_with_its_credentials(
    png_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server stands in for the proxy: a request through a proxy names the whole URL.
    with HostileServer(answering(200, {"fileID": GOOD_FILE_ID})) as proxy:
        set_proxy_variables(monkeypatch, f"http://agent:s3cret@127.0.0.1:{proxy.port}", None)
        outcome = post_behind_proxy(png_file)
    assert isinstance(outcome, UploadSuccess)
    head = proxy.requests[0].decode()
    assert head.startswith("POST http://api.invalid/v1/minimax/files/?account=123456 HTTP/1.1\r\n")
    headers = {
        name.lower(): value for name, _, value in (line.partition(": ") for line in head.split("\r\n")[1:])
    }
    assert headers["proxy-authorization"] == "Basic YWdlbnQ6czNjcmV0"  # agent:s3cret


def test_no_proxy_sends_the_upload_straight_to_the_api(
    png_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        HostileServer(answering(200, {"fileID": GOOD_FILE_ID})) as api,
        HostileServer(answering(502, {"error": "the proxy was used"})) as proxy,
    ):
        set_proxy_variables(monkeypatch, f"http://127.0.0.1:{proxy.port}", "127.0.0.1")
        client = hostile_client(api)
        try:
            outcome, _ = post(client, png_file)
        finally:
            client.close()
    assert isinstance(outcome, UploadSuccess)
    assert proxy.requests == []
    assert api.requests[0].decode().startswith("POST /v1/minimax/files/?account=123456 HTTP/1.1\r\n")


def test_the_proxy_password_is_not_in_the_failure_when_the_proxy_is_down(
    png_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer(answering(200, {"fileID": GOOD_FILE_ID})) as gone:
        port = gone.port
    # The port now refuses connections: the failure is logged and may reach a record or a hook.
    set_proxy_variables(monkeypatch, f"http://agent:s3cret@127.0.0.1:{port}", None)
    outcome = post_behind_proxy(png_file)
    assert isinstance(outcome, UploadFailure)
    assert outcome.failure_class is FailureClass.TEMPORARY
    assert "s3cret" not in outcome.error
    assert "refused" in outcome.error.lower()
