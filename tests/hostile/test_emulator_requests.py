"""The emulator's request log (`GET /_emulator/requests`) keeps every request that reached no endpoint:
whatever path or method a client sends, the log shows it without the token and the emulator goes on."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from watcher.emulator import Emulator

TOKEN = "user:12345-hostileTOKENvalue"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN) as emu:
        yield emu


def send(emulator: Emulator, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_odd_requests_are_listed_as_other_and_never_show_the_token(emulator: Emulator) -> None:
    odd = [
        ("GET", f"/v1/minimax/{TOKEN}/files"),
        ("POST", f"/x?token={quote(TOKEN, safe='')}"),  # percent-encoded
        ("PATCH", "/v1/minimax/files/"),
        ("DELETE", f"/v1/minimax/videos/create?{'a' * 8000}"),
        ("GET", "/%0d%0aSet-Cookie:%20x=1"),
    ]
    statuses = [send(emulator, method, path) for method, path in odd]

    assert statuses == [404, 404, 405, 405, 404]
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    conn.request("GET", "/_emulator/requests")
    body = conn.getresponse().read()
    conn.close()
    listed = json.loads(body)
    assert [(r["kind"], r["method"], r["status"]) for r in listed] == [
        ("other", m, s) for (m, _), s in zip(odd, statuses, strict=True)
    ]
    assert TOKEN.encode() not in body and quote(TOKEN, safe="").encode() not in body
    assert listed[0]["path"] == "/v1/minimax/<token>/files"
    assert listed[4]["path"] == "/\r\nSet-Cookie: x=1"  # kept as text, inside JSON: nothing to inject
