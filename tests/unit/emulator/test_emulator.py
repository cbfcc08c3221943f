"""Tests for the useapi.net MiniMax files endpoint emulator: real sockets, `requests` as the client."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import pytest
import requests

from watcher.emulator import Emulator, Fault

TOKEN = "user:12345-abcdefghijklmnop"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-bytes" * 100
FILE_ID_RE = re.compile(r"user:12345-minimax:(?P<account>\d+)-file:(?P<id>\d+)")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN) as emu:
        yield emu


@pytest.fixture
def two_accounts() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, accounts=("111", "222")) as emu:
        yield emu


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def upload(
    session: requests.Session,
    emu: Emulator,
    data: bytes | Iterable[bytes] | IO[bytes] = PNG,
    *,
    account: str | None = "123456",
    content_type: str | None = "image/png",
    token: str | None = TOKEN,
    path: str = "/files/",
) -> requests.Response:
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    params = {"account": account} if account is not None else None
    return session.post(emu.base_url + path, params=params, data=data, headers=headers, timeout=10)


class SizedChunks:
    """An iterable body with a length: requests streams it with a Content-Length header."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk = chunk
        self.count = count

    def __len__(self) -> int:
        return len(self.chunk) * self.count

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            yield self.chunk


# -- the happy path -----------------------------------------------------------------------------------


def test_base_url_and_port(emulator: Emulator) -> None:
    assert emulator.base_url == f"http://127.0.0.1:{emulator.port}/v1/minimax"
    assert emulator.port > 0
    assert TOKEN not in repr(emulator)


def test_successful_upload_returns_file_id_and_records_sha256(
    emulator: Emulator, session: requests.Session
) -> None:
    resp = upload(session, emulator, PNG)
    assert resp.status_code == 200
    body = resp.json()
    match = FILE_ID_RE.fullmatch(body["fileID"])
    assert match is not None and match["account"] == "123456"
    assert re.fullmatch(rf"http://127\.0\.0\.1:{emulator.port}/oss/{match['id']}\.png", body["ossPath"])

    (rec,) = emulator.uploads
    assert rec.sha256 == hashlib.sha256(PNG).hexdigest()
    assert rec.size == len(PNG)
    assert rec.file_id == body["fileID"]
    assert (rec.account, rec.content_type, rec.status, rec.fault) == ("123456", "image/png", 200, None)
    assert emulator.requests == [rec]


def test_jpeg_with_parameters_and_path_without_trailing_slash(
    emulator: Emulator, session: requests.Session
) -> None:
    resp = upload(session, emulator, JPEG, content_type="image/jpeg; charset=binary", path="/files")
    assert resp.status_code == 200
    assert resp.json()["ossPath"].endswith(".jpg")
    assert emulator.uploads[0].sha256 == hashlib.sha256(JPEG).hexdigest()


def test_file_ids_are_unique_and_the_connection_is_kept_alive(emulator: Emulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    ids = []
    sockets = []
    try:
        for _ in range(3):
            conn.request("POST", "/v1/minimax/files/?account=123456", body=PNG, headers=headers)
            resp = conn.getresponse()
            assert resp.status == 200
            assert not resp.will_close
            ids.append(json.loads(resp.read())["fileID"])
            sockets.append(conn.sock)
    finally:
        conn.close()
    assert len(set(ids)) == 3
    numbers = [int(FILE_ID_RE.fullmatch(i)["id"]) for i in ids]  # type: ignore[index]
    assert numbers == sorted(numbers)
    assert sockets[0] is sockets[1] is sockets[2]


def test_streamed_50mb_upload(emulator: Emulator, session: requests.Session, tmp_path: Path) -> None:
    chunk = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    body = SizedChunks(chunk, 50)
    expected = hashlib.sha256(chunk * 50).hexdigest()

    resp = upload(session, emulator, body)
    assert resp.status_code == 200

    big = tmp_path / "big.png"
    with big.open("wb") as f:
        for _ in range(50):
            f.write(chunk)
    with big.open("rb") as f:
        resp = upload(session, emulator, f)
    assert resp.status_code == 200

    assert [(r.size, r.sha256) for r in emulator.uploads] == [(len(body), expected)] * 2


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong", TOKEN + "x", None])
def test_bad_or_missing_token_is_401(
    emulator: Emulator, session: requests.Session, token: str | None
) -> None:
    resp = upload(session, emulator, token=token)
    assert resp.status_code == 401
    assert resp.json() == {"error": "Unauthorized", "code": 401}
    assert emulator.uploads == []
    assert [r.status for r in emulator.requests] == [401]


def test_token_without_bearer_prefix_is_401(emulator: Emulator, session: requests.Session) -> None:
    resp = session.post(
        emulator.base_url + "/files/",
        data=PNG,
        headers={"Authorization": TOKEN, "Content-Type": "image/png"},
        timeout=10,
    )
    assert resp.status_code == 401


def test_missing_account_is_fine_with_a_single_account(emulator: Emulator, session: requests.Session) -> None:
    resp = upload(session, emulator, account=None)
    assert resp.status_code == 200
    assert resp.json()["fileID"].startswith("user:12345-minimax:123456-file:")
    assert emulator.uploads[0].account == "123456"


def test_missing_account_with_several_accounts_is_400(
    two_accounts: Emulator, session: requests.Session
) -> None:
    resp = upload(session, two_accounts, account=None)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "account is required when several accounts are configured",
        "code": 400,
    }
    ok = upload(session, two_accounts, account="222")
    assert ok.status_code == 200
    assert FILE_ID_RE.fullmatch(ok.json()["fileID"])["account"] == "222"  # type: ignore[index]


def test_unknown_account_is_400(emulator: Emulator, session: requests.Session) -> None:
    resp = upload(session, emulator, account="999")
    assert resp.status_code == 400
    assert resp.json() == {"error": "Account 999 not found", "code": 400}
    assert emulator.requests[0].account == "999"


@pytest.mark.parametrize("content_type", ["image/webp", "application/octet-stream", None])
def test_unsupported_content_type_is_400(
    emulator: Emulator, session: requests.Session, content_type: str | None
) -> None:
    resp = upload(session, emulator, content_type=content_type)
    assert resp.status_code == 400
    assert resp.json()["code"] == 400
    assert "image/png or image/jpeg" in resp.json()["error"]
    assert emulator.uploads == []


def test_empty_body_is_400(emulator: Emulator, session: requests.Session) -> None:
    resp = upload(session, emulator, b"")
    assert resp.status_code == 400
    assert "empty" in resp.json()["error"]


def test_chunked_body_is_400_and_the_session_still_works(
    emulator: Emulator, session: requests.Session
) -> None:
    def gen() -> Iterable[bytes]:
        yield PNG

    resp = upload(session, emulator, gen())
    assert resp.status_code == 400
    assert "Content-Length" in resp.json()["error"]
    assert upload(session, emulator).status_code == 200


def test_unknown_path_is_404_and_wrong_method_405(emulator: Emulator, session: requests.Session) -> None:
    resp = session.get(f"{emulator.base_url}/nope", timeout=10)
    assert resp.status_code == 404
    assert resp.json()["code"] == 404
    resp = session.get(f"{emulator.base_url}/files/", timeout=10)
    assert resp.status_code == 405
    assert emulator.requests == []


# -- faults -------------------------------------------------------------------------------------------


def test_status_429_with_retry_after(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="status", status=429, retry_after="2"))
    resp = upload(session, emulator)
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "2"
    assert resp.json()["code"] == 429
    assert isinstance(resp.json()["error"], str)
    rec = emulator.requests[0]
    assert (rec.status, rec.fault, rec.file_id) == (429, "status", None)
    assert rec.sha256 == hashlib.sha256(PNG).hexdigest()  # the body was read before answering
    # consumed: the same keep-alive session now succeeds
    assert upload(session, emulator).status_code == 200
    assert emulator.faults == []


@pytest.mark.parametrize("status", [400, 401, 402, 412, 500, 502, 503, 504, 596])
def test_status_faults(emulator: Emulator, session: requests.Session, status: int) -> None:
    emulator.add_fault(Fault(kind="status", status=status))
    resp = upload(session, emulator)
    assert resp.status_code == status
    assert resp.json()["code"] == status
    assert "Retry-After" not in resp.headers
    assert emulator.uploads == []


def test_reset_fault_breaks_the_connection(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="reset"))
    body = b"\x89PNG" + b"x" * (4 << 20)
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(session, emulator, body)
    (rec,) = emulator.requests
    assert (rec.status, rec.fault, rec.sha256, rec.file_id) == (0, "reset", None, None)
    assert 0 < rec.size < len(body)
    assert upload(session, emulator).status_code == 200


def test_reset_fault_with_a_small_body(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="reset"))
    with pytest.raises(requests.exceptions.ConnectionError):
        upload(session, emulator, PNG)
    assert emulator.requests[0].fault == "reset"


def test_slow_fault_still_succeeds(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="slow", delay=0.2))
    resp = upload(session, emulator)
    assert resp.status_code == 200
    assert FILE_ID_RE.fullmatch(resp.json()["fileID"])
    assert emulator.uploads[0].fault == "slow"
    assert emulator.faults == []


def test_no_file_id_fault(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="no_file_id"))
    resp = upload(session, emulator)
    assert resp.status_code == 200
    assert set(resp.json()) == {"ossPath"}
    assert emulator.uploads == []
    assert emulator.requests[0].fault == "no_file_id"


def test_non_json_fault(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="non_json"))
    resp = upload(session, emulator)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.text == "<html>oops</html>"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()
    assert emulator.uploads == []


def test_times_counts_down_and_minus_one_lasts_until_cleared(
    emulator: Emulator, session: requests.Session
) -> None:
    emulator.add_fault(Fault(kind="status", status=503, times=2))
    assert [upload(session, emulator).status_code for _ in range(3)] == [503, 503, 200]

    emulator.add_fault(Fault(kind="status", status=502, times=-1))
    assert [upload(session, emulator).status_code for _ in range(3)] == [502, 502, 502]
    assert emulator.faults[0].times == -1
    assert emulator.clear_faults() == 1
    assert upload(session, emulator).status_code == 200


def test_caller_fault_object_is_not_mutated(emulator: Emulator, session: requests.Session) -> None:
    fault = Fault(kind="status", status=500, times=2)
    emulator.add_fault(fault)
    upload(session, emulator)
    assert fault.times == 2
    assert emulator.faults[0].times == 1


def test_per_account_faults_and_fifo_order(two_accounts: Emulator, session: requests.Session) -> None:
    two_accounts.add_fault(Fault(kind="status", status=596, account="222"))
    two_accounts.add_fault(Fault(kind="status", status=429))
    two_accounts.add_fault(Fault(kind="status", status=503))
    # 111 skips the 222-only fault and takes the first general one
    assert upload(session, two_accounts, account="111").status_code == 429
    assert upload(session, two_accounts, account="222").status_code == 596
    assert upload(session, two_accounts, account="222").status_code == 503
    assert upload(session, two_accounts, account="111").status_code == 200
    assert [(r.account, r.status) for r in two_accounts.requests] == [
        ("111", 429),
        ("222", 596),
        ("222", 503),
        ("111", 200),
    ]


def test_faults_do_not_apply_to_rejected_requests(emulator: Emulator, session: requests.Session) -> None:
    emulator.add_fault(Fault(kind="status", status=503))
    assert upload(session, emulator, token="bad").status_code == 401
    assert len(emulator.faults) == 1
    assert upload(session, emulator).status_code == 503


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "explode"},
        {"kind": "status"},
        {"kind": "status", "status": 200},
        {"kind": "reset", "times": 0},
        {"kind": "slow", "delay": -1.0},
    ],
)
def test_invalid_faults_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fault.from_dict(kwargs)


# -- HTTP control endpoints ---------------------------------------------------------------------------


def test_http_control_endpoints(two_accounts: Emulator, session: requests.Session) -> None:
    control = f"{two_accounts.origin}/_emulator"
    resp = session.post(
        f"{control}/faults",
        json=[
            {"kind": "status", "status": 429, "retry_after": "5", "account": "111"},
            {"kind": "no_file_id", "times": 2},
        ],
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.json() == {"added": 2, "pending": 2}
    pending = session.get(f"{control}/faults", timeout=10).json()
    assert [f["kind"] for f in pending] == ["status", "no_file_id"]

    first = upload(session, two_accounts, account="111")
    assert first.status_code == 429 and first.headers["Retry-After"] == "5"
    assert "fileID" not in upload(session, two_accounts, account="111").json()

    resp = session.delete(f"{control}/faults", timeout=10)
    assert resp.json() == {"cleared": 1}
    assert session.get(f"{control}/faults", timeout=10).json() == []
    good = upload(session, two_accounts, account="222").json()

    requests_seen = session.get(f"{control}/requests", timeout=10).json()
    assert [(r["status"], r["fault"]) for r in requests_seen] == [
        (429, "status"),
        (200, "no_file_id"),
        (200, None),
    ]
    assert set(requests_seen[0]) == {
        "kind",
        "account",
        "content_type",
        "size",
        "sha256",
        "status",
        "file_id",
        "fault",
        "received_at",
    }
    uploads = session.get(f"{control}/uploads", timeout=10).json()
    assert [u["file_id"] for u in uploads] == [good["fileID"]]
    assert uploads[0]["sha256"] == hashlib.sha256(PNG).hexdigest()

    assert session.delete(f"{control}/requests", timeout=10).json() == {"cleared": 3}
    assert two_accounts.requests == []


@pytest.mark.parametrize(
    "payload",
    [{"kind": "nope"}, {"kind": "status", "status": "429"}, {"kind": "reset", "colour": "red"}, [1], "x"],
)
def test_http_control_rejects_bad_faults(
    emulator: Emulator, session: requests.Session, payload: object
) -> None:
    resp = session.post(f"{emulator.origin}/_emulator/faults", json=payload, timeout=10)
    assert resp.status_code == 400
    assert resp.json()["code"] == 400
    assert emulator.faults == []


def test_http_control_unknown_endpoint(emulator: Emulator, session: requests.Session) -> None:
    assert session.get(f"{emulator.origin}/_emulator/what", timeout=10).status_code == 404
    assert session.put(f"{emulator.origin}/_emulator/faults", timeout=10).status_code == 405


def test_the_request_log_lists_every_request_but_the_control_calls_each_with_its_kind(
    emulator: Emulator, session: requests.Session
) -> None:
    """The README's `GET /_emulator/requests`: a wrong base URL or method shows there too."""
    control = f"{emulator.origin}/_emulator"
    assert session.post(f"{control}/faults", json={"kind": "status", "status": 503}, timeout=10).ok
    assert upload(session, emulator).status_code == 503
    assert upload(session, emulator).status_code == 200
    assert session.get(f"{emulator.origin}/v1/minimax/files/", timeout=10).status_code == 405
    assert session.post(f"{emulator.origin}/v1/files/?t={TOKEN}", data=PNG, timeout=10).status_code == 404
    assert session.get(f"{control}/faults", timeout=10).ok and session.get(f"{control}/videos", timeout=10).ok

    listed = session.get(f"{control}/requests", timeout=10).json()

    assert [(r["kind"], r["status"]) for r in listed] == [
        ("upload", 503),
        ("upload", 200),
        ("other", 405),
        ("other", 404),
    ]
    assert listed[2]["method"] == "GET" and listed[2]["path"] == "/v1/minimax/files/"
    assert listed[3]["path"] == "/v1/files/?t=<token>", "the token is never shown"
    assert TOKEN not in json.dumps(listed)
    others = session.get(f"{control}/requests", params={"kind": "other"}, timeout=10).json()
    assert [r["status"] for r in others] == [405, 404]
    assert len(emulator.requests) == 2, "`requests` (the upload handler's) is as it was"


# -- waiting, disconnects, lifecycle, logging ---------------------------------------------------------


def test_wait_for_uploads(emulator: Emulator) -> None:
    def client() -> None:
        with requests.Session() as s:
            for _ in range(2):
                upload(s, emulator)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        got = emulator.wait_for_uploads(2, timeout=10)
    finally:
        thread.join(10)
    assert len(got) == 2
    assert all(r.status == 200 for r in got)


def test_wait_for_uploads_times_out_with_a_helpful_message(
    emulator: Emulator, session: requests.Session
) -> None:
    upload(session, emulator, token="bad")
    with pytest.raises(TimeoutError, match=r"at least 1 successful upload.*got 0.*401"):
        emulator.wait_for_uploads(1, timeout=0.05)


def test_client_disconnecting_mid_body_is_recorded(emulator: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/minimax/files/?account=123456 HTTP/1.1\r\n"
            b"Host: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n" + PNG[:10]
        )
    (rec,) = emulator.wait_for_requests(1, timeout=10)
    assert (rec.status, rec.fault, rec.size, rec.sha256) == (0, "client_disconnected", 10, None)


def test_stop_closes_keep_alive_connections_and_is_idempotent() -> None:
    emu = Emulator(token=TOKEN).start()
    with pytest.raises(RuntimeError):
        emu.start()
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        conn.request("GET", "/_emulator/faults")
        resp = conn.getresponse()
        assert json.loads(resp.read()) == []
        assert not resp.will_close and conn.sock is not None
        emu.stop()
        emu.stop()
        assert conn.sock.recv(1) == b""  # the idle keep-alive connection was closed by the server
    finally:
        conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", emu.port), timeout=2).close()


def test_accounts_given_as_a_single_string() -> None:
    assert Emulator(token=TOKEN, accounts="777").accounts == ("777",)
    with pytest.raises(ValueError):
        Emulator(token=TOKEN, accounts=())
    with pytest.raises(ValueError):
        Emulator(token="")


def test_token_is_never_logged(
    emulator: Emulator, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="watcher.emulator"):
        upload(session, emulator)
        upload(session, emulator, token="bad")
    assert "upload account=123456" in caplog.text
    assert TOKEN not in caplog.text


def test_serve_forever_logs_the_base_url_and_stops_on_sigterm() -> None:
    code = (
        "from watcher.emulator import serve_forever\n"
        f"serve_forever(token={TOKEN!r}, accounts=['111', '222'], port=0)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    ) as proc:
        assert proc.stderr is not None
        try:
            lines: list[str] = []
            base_url: str | None = None
            while base_url is None:
                line = proc.stderr.readline()
                assert line, f"emulator exited early: {''.join(lines)}"
                lines.append(line)
                if found := re.search(r"listening on (http://127\.0\.0\.1:\d+/v1/minimax)", line):
                    base_url = found[1]
            resp = requests.post(
                base_url + "/files/?account=222",
                data=PNG,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"},
                timeout=10,
            )
            assert resp.status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            output = "".join(lines) + proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "accounts: 111, 222" in output
    assert TOKEN not in output
