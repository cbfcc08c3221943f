"""`watcher.page.app`: the routes, the headers on every answer, Basic auth, the status cached 2 s, and
JSON that no name can turn into markup; called as WSGI, with real files."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from tests.helpers import TOKEN
from tests.helpers.images import png_bytes
from tests.helpers.page import Site, done_sidecar
from watcher.core.signature import signature_of
from watcher.disk.records import build_error_record
from watcher.page.app import CSP, PageApp
from watcher.redact import register_secret
from watcher.report.listener import FileBody


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call(app: PageApp, path: str, method: str = "GET", **headers: str) -> tuple[str, dict[str, str], bytes]:
    target, _, query = path.partition("?")
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": target, "QUERY_STRING": query}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started[:] = [status, dict(headers)]

    result = app(environ, start_response)
    body = b"".join(result)
    if isinstance(result, FileBody):
        result.close()
    return started[0], started[1], body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(site: Site, clock: Clock) -> Callable[..., PageApp]:
    def make(password: bytes | None = None) -> PageApp:
        return PageApp(site.config, site.state, site.owner, password, static_dir=site.static, clock=clock)

    return make


def test_every_answer_carries_the_security_headers(make: Callable[..., PageApp]) -> None:
    app = make()
    for path in ("/", "/static/page.js", "/api/status", "/nope", "/thumbnail?folder=0&file=cat.png"):
        _, headers, _ = call(app, path)
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert call(app, "/static/page.css")[1]["Content-Type"] == "text/css; charset=utf-8"
    assert call(app, "/")[1]["Content-Type"] == "text/html; charset=utf-8"


def test_only_the_allow_listed_static_files_are_served(make: Callable[..., PageApp]) -> None:
    app = make()
    assert call(app, "/")[0] == "200 OK" and call(app, "/static/page.js")[2] == b"'use strict';"
    for path in ("/static/index.html", "/static/../secret.txt", "/index.html", "/static/", "/secret.txt"):
        assert call(app, path)[0] == "404 Not Found", path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_anything_but_get_and_head_is_refused(make: Callable[..., PageApp], method: str) -> None:
    status, headers, _ = call(make(), "/api/status", method)
    assert status == "405 Method Not Allowed" and headers["Allow"] == "GET, HEAD"


def test_with_a_password_every_route_asks_for_it(make: Callable[..., PageApp]) -> None:
    app = make(b"s3cret-pass")

    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    for path in ("/", "/api/status", "/nope", "/video?folder=0&file=videos%2Fcat.mp4"):
        status, headers, _ = call(app, path)
        assert status == "401 Unauthorized" and headers["WWW-Authenticate"] == 'Basic realm="minimax-watcher"'
    for wrong in (
        basic("u:wrong"),
        basic("s3cret-pass"),
        "Basic !!!",
        "Bearer s3cret-pass",
        basic("u:s3cret-pas"),
    ):
        assert call(app, "/api/status", authorization=wrong)[0] == "401 Unauthorized", wrong
    assert call(app, "/api/status", authorization=basic("anyone:s3cret-pass"))[0] == "200 OK"
    assert call(app, "/api/status", authorization=basic(":s3cret-pass"))[0] == "200 OK"


def test_the_status_is_built_at_most_every_two_seconds(
    make: Callable[..., PageApp], site: Site, clock: Clock
) -> None:
    app = make()
    first = json.loads(call(app, "/api/status")[2])
    assert first["folders"][0]["uploaded"] == 1
    (site.drop / "dog.png").write_bytes(png_bytes(2))
    clock.now += 1.9
    assert json.loads(call(app, "/api/status")[2]) == first
    clock.now += 0.1
    assert json.loads(call(app, "/api/status")[2])["folders"][0]["pending"] == 1
    assert call(app, "/api/status")[1]["Cache-Control"] == "no-store"


class SlowWalk(Clock):
    """Each reading of the clock is `step` seconds after the last: a build of the status takes `step`."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_slow_status_is_built_again_only_after_five_times_as_long(site: Site) -> None:
    slow = SlowWalk(step=3.0)  # a build takes 3 s: the next is due 15 s after the last began
    app = PageApp(site.config, site.state, site.owner, None, static_dir=site.static, clock=slow)
    first = json.loads(call(app, "/api/status")[2])  # begun at 103, built by 106
    (site.drop / "dog.png").write_bytes(png_bytes(2))
    for _ in range(3):  # asked at 109, 112, 115: before 103 + 15
        assert json.loads(call(app, "/api/status")[2]) == first
    assert json.loads(call(app, "/api/status")[2])["folders"][0]["pending"] == 1  # asked at 118


def test_names_are_escaped_and_secrets_removed_from_the_json(
    make: Callable[..., PageApp], site: Site
) -> None:
    register_secret(TOKEN)
    for name in ("<script>alert(1)<b>&.png", f"{TOKEN}.png"):
        (site.drop / name).write_bytes(png_bytes(3))
        record = build_error_record(
            error=f"refused {name}", code=400, attempts=1, signature=signature_of(os.stat(site.drop / name))
        )
        (site.drop / (name + ".error.json")).write_text(json.dumps(record))
    _, headers, body = call(make(), "/api/status")
    assert headers["Content-Type"] == "application/json"
    assert b"<" not in body and b">" not in body and b"&" not in body and TOKEN.encode() not in body
    failures = {f["file"] for f in json.loads(body)["folders"][0]["failures"]}
    assert "<script>alert(1)<b>&.png" in failures and "<redacted>.png" in failures


def test_a_thumbnail_is_a_small_jpeg_of_a_done_image_and_kept(
    make: Callable[..., PageApp], site: Site
) -> None:
    app = make()
    status, headers, body = call(app, "/thumbnail?folder=0&file=cat.png")
    assert status == "200 OK" and headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "JPEG" and image.size == (320, 320)
    assert len(list((site.state / "thumbnails").glob("*.jpg"))) == 1
    assert (
        call(app, "/thumbnail?folder=0&file=cat.png", if_none_match=headers["ETag"])[0] == "304 Not Modified"
    )
    # New bytes: a new thumbnail under a new name once the sidecar says they are done.
    (site.drop / "cat.png").write_bytes(png_bytes(9, size=100))
    assert call(app, "/thumbnail?folder=0&file=cat.png")[0] == "404 Not Found"  # its sidecar is for the old
    done_sidecar(site.drop / "cat.png")
    status, again, body = call(app, "/thumbnail?folder=0&file=cat.png")
    assert status == "200 OK" and again["ETag"] != headers["ETag"]
    with Image.open(io.BytesIO(body)) as image:
        assert image.size == (100, 100)
    assert len(list((site.state / "thumbnails").glob("*.jpg"))) == 2


def test_the_video_is_served_whole_or_by_range(make: Callable[..., PageApp], site: Site) -> None:
    app = make()
    mp4 = (site.drop / "videos" / "cat.mp4").read_bytes()
    status, headers, body = call(app, "/video?folder=0&file=videos%2Fcat.mp4")
    assert status == "200 OK" and body == mp4 and headers["Accept-Ranges"] == "bytes"
    for asked, first, last in (
        ("bytes=10-19", 10, 19),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-5", 1019, 1023),
    ):
        status, headers, body = call(app, "/video?folder=0&file=videos%2Fcat.mp4", range=asked)
        assert status == "206 Partial Content" and body == mp4[first : last + 1], asked
        assert headers["Content-Range"] == f"bytes {first}-{last}/1024"
    status, headers, _ = call(app, "/video?folder=0&file=videos%2Fcat.mp4", range="bytes=5000-")
    assert status == "416 Range Not Satisfiable" and headers["Content-Range"] == "bytes */1024"
    (site.drop / "videos" / "other.mp4").write_bytes(mp4)  # on disk, but no video of the journal
    assert call(app, "/video?folder=0&file=videos%2Fother.mp4")[0] == "404 Not Found"
