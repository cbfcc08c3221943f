"""What the emulated CDN sends for a download, and how a request carrying the token is recognised
and scrubbed before it is recorded (pure functions; the HTTP side is in test_video_http.py)."""

from __future__ import annotations

import pytest

from watcher.emulator.downloads import carries_token, plan_download, scrub_headers
from watcher.emulator.faults import Fault
from watcher.emulator.mp4 import make_mp4

TOKEN = "user:12345-abcdefghijklmnop"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/_emulator/downloads/1.mp4", [("Authorization", "Bearer anything")]),
        ("/_emulator/downloads/1.mp4", [("authorization", "")]),
        ("/_emulator/downloads/1.mp4", [("Proxy-Authorization", "Basic eDp5")]),
        ("/_emulator/downloads/1.mp4", [("X-Token", f"x{TOKEN}y")]),
        ("/_emulator/downloads/1.mp4", [("Cookie", f"a={TOKEN}")]),
        (f"/_emulator/downloads/1.mp4?t={TOKEN}", []),
        ("/_emulator/downloads/1.mp4?t=user%3A12345-abcdefghijklmnop", []),
    ],
)
def test_a_request_carrying_an_authorization_header_or_the_token_is_caught(
    path: str, headers: list[tuple[str, str]]
) -> None:
    assert carries_token(TOKEN, path, headers)


def test_a_clean_request_is_not_caught() -> None:
    headers = [("Host", "127.0.0.1"), ("Accept", "*/*"), ("Cookie", "session=1")]
    assert not carries_token(TOKEN, "/_emulator/downloads/1.mp4", headers)


def test_recorded_headers_keep_no_secret() -> None:
    headers = [("Authorization", "Bearer x"), ("Cookie", "c=1"), ("X-Other", f"<{TOKEN}>"), ("Accept", "*/*")]
    assert scrub_headers(TOKEN, headers) == {
        "Authorization": "<removed>",
        "Cookie": "<removed>",
        "X-Other": "<<token>>",
        "Accept": "*/*",
    }


def test_the_plans() -> None:
    mp4 = make_mp4()
    path = "/_emulator/downloads/1.mp4"
    assert plan_download(None, path, carried=True).status == 403
    assert plan_download(None, path, found=False).status == 404
    normal = plan_download(None, path)
    assert (normal.answer, normal.data, normal.total, normal.size) == (None, mp4, len(mp4), len(mp4))
    cut = plan_download(Fault("cut", target="download"), path)
    assert cut.cut_after == len(mp4) // 2 == cut.size and cut.total == len(mp4)
    huge = plan_download(Fault("huge_undeclared", target="download", size=1 << 40), path)
    assert not huge.declared and huge.total == 1 << 40 and huge.data.startswith(mp4[:8])
    moved = plan_download(Fault("redirect", target="download"), path)
    assert moved.answer is not None and ("Location", path) in moved.answer.headers
    slow = plan_download(Fault("slow", target="download", delay=3), path)
    assert slow.trickle == 3 and slow.data == mp4
