"""Unit tests for `watcher.video.client`: real HTTP on loopback, servers that answer, refuse, trickle,
cut the connection, redirect elsewhere, or send what no API should."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.unit.video.servers import Behaviour, Handler, Server, open_sockets_to, serving
from watcher.redact import register_secret
from watcher.video.client import MAX_ANSWER_BYTES, VideoClient

TOKEN = "user:4242-videoclientSECRET"
VIDEO_ID = "user:4242-minimax:123456-video:987654321"
BODY = {"account": "123456", "fileID": "user:4242-minimax:123456-file:1", "model": "I2V-2.3", "prompt": "été"}
# What a loaded 2-core machine may add to a bound before the test calls it missed.
SLACK = 3.0


@contextmanager
def client_of(server: Server, **timeouts: float) -> Iterator[VideoClient]:
    client = VideoClient(server.base_url, TOKEN, **timeouts)
    try:
        yield client
    finally:
        client.close()


def answer_with(status: int, body: bytes | dict[str, object] | list[object], **headers: str) -> Behaviour:
    def behaviour(handler: Handler, server: Server) -> None:
        handler.reply(status, body, **headers)

    return behaviour


def test_create_posts_the_body_as_json_with_the_token() -> None:
    with serving(answer_with(200, {"videoId": VIDEO_ID})) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert (answer.status, answer.data, answer.error, answer.sent) == (200, {"videoId": VIDEO_ID}, "", True)
    [seen] = server.seen
    assert (seen.method, seen.path) == ("POST", "/v1/minimax/videos/create")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Accept-Encoding"] == "identity"
    assert json.loads(seen.body) == BODY


def test_poll_gets_the_video_by_its_id() -> None:
    status = {"videoId": VIDEO_ID, "status": 12, "statusFinal": False, "percent": 40}
    with serving(answer_with(200, status)) as server, client_of(server) as client:
        answer = client.poll(VIDEO_ID)
    assert answer.status == 200 and answer.data == status
    [seen] = server.seen
    assert (seen.method, seen.path) == ("GET", f"/v1/minimax/videos/{VIDEO_ID}")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("video_id", "path"),
    [
        ("a/../../files/x?account=1#f", "a%2F..%2F..%2Ffiles%2Fx%3Faccount%3D1%23f"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("id with spaces\r\nX-Evil: 1", "id%20with%20spaces%0D%0AX-Evil:%201"),
        ("%2e%2e", "%252e%252e"),
    ],
)
def test_a_hostile_video_id_stays_one_path_segment(video_id: str, path: str) -> None:
    with serving(answer_with(404, {"error": "not found"})) as server, client_of(server) as client:
        answer = client.poll(video_id)
    assert answer.status == 404
    assert [seen.path for seen in server.seen] == [f"/v1/minimax/videos/{path}"]


def test_an_error_answer_gives_its_status_reason_and_retry_after() -> None:
    busy = answer_with(429, {"error": "Too many jobs", "code": 429}, Retry_After="7")
    with serving(busy) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert (answer.status, answer.retry_after, answer.error) == (429, 7.0, "HTTP 429: Too many jobs")
    assert answer.data == {"error": "Too many jobs", "code": 429}


def test_retry_after_as_an_http_date() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    with serving(answer_with(503, b"busy", Retry_After=when)) as server, client_of(server) as client:
        answer = client.poll(VIDEO_ID)
    assert answer.status == 503 and answer.retry_after is not None and 100 < answer.retry_after <= 121


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        ([1, 2, 3], "not a JSON object"),
        (b'"videoId"', "not a JSON object"),
        (b'{"videoId": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "not JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_gives_no_data(body: bytes | list[object], said: str) -> None:
    with serving(answer_with(200, body)) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert answer.status == 200 and answer.data is None and said in answer.error


def test_a_compressed_answer_is_never_inflated() -> None:
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in a few dozen KiB
    with serving(answer_with(200, bomb, Content_Encoding="gzip")) as server, client_of(server) as client:
        answer = client.poll(VIDEO_ID)
    assert answer.status == 200 and answer.data is None and "not JSON" in answer.error


def test_an_endless_body_is_read_to_1_mib_only() -> None:
    def endless(handler: Handler, server: Server) -> None:
        handler.stream(b"{" + b" " * 65535, total=None, declared=None)

    with serving(endless) as server, client_of(server, read_timeout=5) as client:
        started = time.monotonic()
        answer = client.poll(VIDEO_ID)
        elapsed = time.monotonic() - started
    assert answer.status == 200 and answer.data is None
    assert f"over {MAX_ANSWER_BYTES} bytes" in answer.error
    assert elapsed < SLACK


def test_a_refused_connection_was_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = VideoClient(f"http://127.0.0.1:{port}/v1/minimax", TOKEN, connect_timeout=2)
    try:
        answer = client.create(BODY)
    finally:
        client.close()
    assert answer.status is None and answer.sent is False and "network error" in answer.error


def test_a_name_that_does_not_resolve_was_not_sent() -> None:
    client = VideoClient("http://no-such-host.invalid/v1/minimax", TOKEN, connect_timeout=2)
    try:
        answer = client.create(BODY)
    finally:
        client.close()
    assert answer.status is None and answer.sent is False


def test_a_failed_tls_handshake_was_not_sent() -> None:
    # An https base URL on a plain HTTP server: the handshake fails before any byte of the request.
    with serving(answer_with(200, {"videoId": VIDEO_ID})) as server:
        client = VideoClient(
            f"https://127.0.0.1:{server.server_address[1]}/v1/minimax", TOKEN, connect_timeout=2
        )
        try:
            answer = client.create(BODY)
        finally:
            client.close()
    assert answer.status is None and answer.sent is False
    assert server.seen == []


def test_no_answer_after_the_request_was_read_may_have_been_sent() -> None:
    def never(handler: Handler, server: Server) -> None:
        server.stop.wait(10)

    with serving(never) as server, client_of(server, connect_timeout=1, read_timeout=0.5) as client:
        started = time.monotonic()
        answer = client.create(BODY)
        elapsed = time.monotonic() - started
        server.stop.set()
    assert answer.status is None and answer.sent is True
    assert elapsed < 0.5 + SLACK
    assert len(server.seen) == 1  # and it was not sent again


def test_a_connection_cut_after_the_request_may_have_been_sent_and_is_never_resent() -> None:
    def cut(handler: Handler, server: Server) -> None:
        handler.cut()

    with serving(cut) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert answer.status is None and answer.sent is True
    assert len(server.seen) == 1


def test_a_5xx_is_not_resent_either() -> None:
    with serving(answer_with(503, {"error": "busy"})) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert answer.status == 503 and len(server.seen) == 1


def test_a_success_whose_body_is_cut_is_no_answer() -> None:
    def half(handler: Handler, server: Server) -> None:
        handler.stream(b'{"videoId": "user:4242-mini', total=27, declared=400)

    with serving(half) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert answer.status is None and answer.sent is True and answer.data is None


def test_an_error_whose_body_is_cut_keeps_its_status() -> None:
    def half(handler: Handler, server: Server) -> None:
        handler.send_response(429)
        handler.send_header("Retry-After", "30")
        handler.send_header("Content-Length", "400")
        handler.end_headers()
        handler.wfile.write(b'{"error": "bu')
        handler.cut()

    with serving(half) as server, client_of(server) as client:
        answer = client.create(BODY)
    assert (answer.status, answer.data, answer.retry_after) == (429, None, 30.0)


def test_a_trickled_answer_is_given_up_at_the_deadline() -> None:
    # One byte every 0.2 s never trips a 0.5 s read timeout: only the whole exchange's deadline ends it.
    def trickle(handler: Handler, server: Server) -> None:
        handler.stream(b" ", total=None, declared=None, pause=0.2)

    with serving(trickle) as server, client_of(server, connect_timeout=0.5, read_timeout=0.5) as client:
        started = time.monotonic()
        answer = client.poll(VIDEO_ID)
        elapsed = time.monotonic() - started
    assert answer.status is None and answer.sent is True and "did not answer within" in answer.error
    assert elapsed < 1.0 + SLACK


def test_a_redirect_is_not_followed_and_the_token_never_leaves() -> None:
    with serving(answer_with(200, {"stolen": True})) as elsewhere:
        target = f"{elsewhere.origin}/steal"
        with serving(answer_with(302, b"", Location=target)) as server, client_of(server) as client:
            created = client.create(BODY)
            polled = client.poll(VIDEO_ID)
    assert created.status == 302 and polled.status == 302
    assert elsewhere.seen == []


def test_each_create_gets_a_new_connection_and_polls_reuse_theirs() -> None:
    with serving(answer_with(200, {"videoId": VIDEO_ID})) as server, client_of(server) as client:
        client.create(BODY)
        client.create(BODY)
        client.poll(VIDEO_ID)
        client.poll(VIDEO_ID)
    creates = [seen.client_port for seen in server.seen if seen.method == "POST"]
    polls = [seen.client_port for seen in server.seen if seen.method == "GET"]
    assert len(set(creates)) == 2
    assert len(set(polls)) == 1


def test_the_token_is_redacted_from_the_reasons() -> None:
    register_secret(TOKEN)
    with (
        serving(answer_with(401, {"error": f"Unauthorized: {TOKEN}"})) as server,
        client_of(server) as client,
    ):
        answer = client.poll(VIDEO_ID)
    assert answer.status == 401
    assert TOKEN not in answer.error and "<redacted>" in answer.error


def test_a_body_that_is_not_json_serializable_is_not_sent() -> None:
    with serving(answer_with(200, {})) as server, client_of(server) as client:
        answer = client.create({"prompt": object()})
    assert answer.status is None and answer.sent is False and server.seen == []


def test_a_create_leaves_no_connection_open() -> None:
    with serving(answer_with(200, {"videoId": VIDEO_ID})) as server, client_of(server) as client:
        client.create(BODY)
        assert open_sockets_to(server.server_address[1]) == []
        client.poll(VIDEO_ID)
        client.close()
        assert open_sockets_to(server.server_address[1]) == []
