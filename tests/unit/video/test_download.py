"""Unit tests for `watcher.video.download`: real HTTP on loopback, real files, a hostile CDN and a dropper
who plants symlinks in the output folder."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.helpers.media import ftyp_box, moov_box, mp4_bytes
from tests.unit.video.servers import Behaviour, Handler, Server, open_sockets_to, serving
from watcher.video.download import MAX_REDIRECTS, Downloaded, DownloadError, cancel_downloads, download_video

MP4 = mp4_bytes(length=200_000)
# An MP4's beginning whose last box runs to the end: a stream of any length behind it looks like video.
ENDLESS_HEAD = ftyp_box() + moov_box() + struct.pack(">I", 0) + b"mdat"
SLACK = 3.0


def serve_bytes(body: bytes, content_type: str = "video/mp4") -> Behaviour:
    def behaviour(handler: Handler, server: Server) -> None:
        handler.reply(200, body, Content_Type=content_type)

    return behaviour


def redirect_to(location: str, status: int = 302) -> Behaviour:
    def behaviour(handler: Handler, server: Server) -> None:
        handler.reply(status, b"", Location=location)

    return behaviour


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def fetch(url: str, drop: Path, dest: str = "videos/shot.mp4", **limits: Any) -> Downloaded:
    return download_video(url, root=str(drop), dest=f"{drop}/{dest}", **limits)


def failure(url: str, drop: Path, dest: str = "videos/shot.mp4", **limits: Any) -> DownloadError:
    with pytest.raises(DownloadError) as caught:
        fetch(url, drop, dest, **limits)
    return caught.value


def dot_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob(".*"))


def test_a_video_is_downloaded_to_its_name(drop: Path) -> None:
    with serving(serve_bytes(MP4)) as server:
        got = fetch(f"{server.origin}/cdn/v.mp4?sig=abc", drop)
    target = drop / "videos" / "shot.mp4"
    assert got == Downloaded(str(target), len(MP4), hashlib.sha256(MP4).hexdigest())
    assert target.read_bytes() == MP4
    assert dot_files(drop) == []
    [seen] = server.seen
    assert seen.path == "/cdn/v.mp4?sig=abc"
    assert "Authorization" not in seen.headers
    assert seen.headers["Accept-Encoding"] == "identity"


def test_the_folders_below_the_root_are_made(drop: Path) -> None:
    with serving(serve_bytes(MP4)) as server:
        got = fetch(f"{server.origin}/v.mp4", drop, "videos/2024/june/shot.mp4")
    assert got.path == f"{drop}/videos/2024/june/shot.mp4"
    assert Path(got.path).read_bytes() == MP4


def test_the_root_may_be_the_output_folder_itself(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    with serving(serve_bytes(MP4)) as server:
        got = download_video(f"{server.origin}/v.mp4", root=str(videos), dest=f"{videos}/shot.mp4")
    assert got.path == f"{videos}/shot.mp4" and (videos / "shot.mp4").read_bytes() == MP4


def test_an_existing_file_is_never_replaced(drop: Path) -> None:
    videos = drop / "videos"
    videos.mkdir()
    (videos / "shot.mp4").write_bytes(b"first")
    (videos / "shot-1.mp4").write_bytes(b"second")
    with serving(serve_bytes(MP4)) as server:
        got = fetch(f"{server.origin}/v.mp4", drop)
    assert got.path == f"{videos}/shot-2.mp4"
    assert (videos / "shot.mp4").read_bytes() == b"first"
    assert (videos / "shot-1.mp4").read_bytes() == b"second"
    assert (videos / "shot-2.mp4").read_bytes() == MP4


def test_a_symlink_planted_at_the_name_is_not_written_through(drop: Path, outside: Path) -> None:
    victim = outside / "victim"
    victim.write_bytes(b"precious")
    videos = drop / "videos"
    videos.mkdir()
    (videos / "shot.mp4").symlink_to(victim)
    with serving(serve_bytes(MP4)) as server:
        got = fetch(f"{server.origin}/v.mp4", drop)
    assert got.path == f"{videos}/shot-1.mp4"
    assert victim.read_bytes() == b"precious"
    assert (videos / "shot.mp4").is_symlink()


def test_a_symlink_at_output_dir_is_refused(drop: Path, outside: Path) -> None:
    (drop / "videos").symlink_to(outside)
    with serving(serve_bytes(MP4)) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert not error.retryable and "symlink" in error.reason
    assert list(outside.iterdir()) == []
    assert server.seen == []  # refused before any request


def test_a_symlink_below_output_dir_is_refused(drop: Path, outside: Path) -> None:
    (drop / "videos").mkdir()
    (drop / "videos" / "sub").symlink_to(outside)
    with serving(serve_bytes(MP4)) as server:
        error = failure(f"{server.origin}/v.mp4", drop, "videos/sub/deeper/shot.mp4")
    assert not error.retryable and "symlink" in error.reason
    assert list(outside.iterdir()) == []


def test_a_destination_outside_the_root_is_refused(drop: Path, outside: Path) -> None:
    with serving(serve_bytes(MP4)) as server:
        for dest in (f"{outside}/shot.mp4", f"{drop}/videos/../../outside/shot.mp4"):
            with pytest.raises(DownloadError) as caught:
                download_video(f"{server.origin}/v.mp4", root=str(drop), dest=dest)
            assert not caught.value.retryable
    assert list(outside.iterdir()) == []


def test_a_declared_10_gb_download_is_refused_before_its_body(drop: Path) -> None:
    def huge(handler: Handler, server: Server) -> None:
        handler.stream(ENDLESS_HEAD + bytes(CHUNK_OF_ZEROS), total=None, declared=10 * 1000**3)

    with serving(huge) as server:
        error = failure(f"{server.origin}/v.mp4", drop, max_bytes=1 << 20)
    assert not error.retryable and "over the 1048576-byte limit" in error.reason
    assert server.streamed < 16 << 20
    assert dot_files(drop) == []
    assert not (drop / "videos" / "shot.mp4").exists()


CHUNK_OF_ZEROS = 1 << 16


def test_an_endless_download_stops_at_max_bytes_with_flat_memory(drop: Path) -> None:
    def endless(handler: Handler, server: Server) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        handler.wfile.write(ENDLESS_HEAD)
        handler.stream_body(bytes(CHUNK_OF_ZEROS))

    limit = 32 << 20
    tracemalloc.start()
    try:
        with serving(endless) as server:
            error = failure(f"{server.origin}/v.mp4", drop, max_bytes=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not error.retryable and "larger than the" in error.reason
    assert limit <= server.streamed
    assert peak < 6 << 20, peak  # a chunk or two in memory, not the 32 MiB
    assert dot_files(drop) == []
    assert list((drop / "videos").iterdir()) == []


def test_an_html_page_is_not_a_video_and_is_not_read_to_its_end(drop: Path) -> None:
    def html(handler: Handler, server: Server) -> None:
        page = b"<!DOCTYPE html><html><body>" + b"<p>Access denied</p>" * 1000
        handler.stream(page, total=None, declared=None)

    with serving(html) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert not error.retryable and "not an MP4" in error.reason
    assert dot_files(drop) == []
    assert list((drop / "videos").iterdir()) == []


def test_a_small_html_page_is_not_a_video(drop: Path) -> None:
    with serving(serve_bytes(b"<html>nope</html>", "text/html")) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert not error.retryable and "not a complete MP4" in error.reason


def test_a_body_cut_before_its_length_is_retryable(drop: Path) -> None:
    def cut(handler: Handler, server: Server) -> None:
        handler.stream(MP4[:50_000], total=50_000, declared=len(MP4))

    with serving(cut) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert error.retryable and "cut short" in error.reason
    assert dot_files(drop) == []
    assert list((drop / "videos").iterdir()) == []


def test_a_body_of_no_declared_length_cut_inside_a_box_is_retryable(drop: Path) -> None:
    def cut(handler: Handler, server: Server) -> None:
        handler.stream(MP4[:50_000], total=50_000, declared=None)

    with serving(cut) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert error.retryable and "cut short" in error.reason
    assert dot_files(drop) == []


def test_an_mp4_whose_boxes_do_not_add_up_is_refused(drop: Path) -> None:
    with serving(serve_bytes(MP4 + b"junk")) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert not error.retryable and "not a complete MP4" in error.reason


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (403, False)]
)
def test_an_error_status(drop: Path, status: int, retryable: bool) -> None:
    def answer(handler: Handler, server: Server) -> None:
        handler.reply(status, {"error": "no"})

    with serving(answer) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert error.retryable is retryable and f"HTTP {status}" in error.reason


def test_no_credential_goes_with_a_redirect_to_another_host(
    drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would take credentials from ~/.netrc and from the URL itself: none may be sent.
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine 127.0.0.1 login api password SECRET\nmachine localhost login api password SECRET\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with serving(serve_bytes(MP4)) as cdn:
        elsewhere = f"http://localhost:{cdn.server_address[1]}/cdn/v.mp4"
        with serving(redirect_to(elsewhere)) as api:
            port = api.server_address[1]
            got = fetch(f"http://user:pw@127.0.0.1:{port}/videos/v.mp4", drop)
    assert Path(got.path).read_bytes() == MP4
    assert [seen.path for seen in cdn.seen] == ["/cdn/v.mp4"]
    for seen in [*api.seen, *cdn.seen]:
        assert "Authorization" not in seen.headers


def test_redirects_are_bounded(drop: Path) -> None:
    hops: list[Server] = []

    def hop(handler: Handler, server: Server) -> None:
        number = int(handler.path.strip("/") or 0)
        handler.reply(302, b"", Location=f"/{number + 1}")

    with serving(hop) as server:
        hops.append(server)
        error = failure(f"{server.origin}/0", drop)
    assert not error.retryable and f"more than {MAX_REDIRECTS}" in error.reason
    assert len(server.seen) == MAX_REDIRECTS + 1


def test_up_to_three_redirects_are_followed(drop: Path) -> None:
    def hop(handler: Handler, server: Server) -> None:
        number = int(handler.path.strip("/"))
        if number < MAX_REDIRECTS:
            handler.reply(307, b"", Location=f"/{number + 1}")
        else:
            handler.reply(200, MP4, Content_Type="video/mp4")

    with serving(hop) as server:
        got = fetch(f"{server.origin}/0", drop)
    assert got.size == len(MP4)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/v.mp4", "/relative/v.mp4", "javascript:x"]
)
def test_only_http_urls_are_fetched(drop: Path, url: str) -> None:
    error = failure(url, drop)
    assert not error.retryable and "not an http(s) URL" in error.reason


def test_a_redirect_to_another_scheme_is_refused(drop: Path, outside: Path) -> None:
    (outside / "secret").write_bytes(b"root only")
    with serving(redirect_to(f"file://{outside}/secret")) as server:
        error = failure(f"{server.origin}/v.mp4", drop)
    assert not error.retryable and "not an http(s) URL (file)" in error.reason
    assert list((drop / "videos").iterdir()) == []


@pytest.mark.parametrize("declared", [True, False], ids=["keep-alive", "connection-close"])
def test_a_trickled_download_ends_at_its_deadline(drop: Path, declared: bool) -> None:
    def trickle(handler: Handler, server: Server) -> None:
        handler.stream(b"\x00", total=None, declared=len(MP4) if declared else None, pause=0.1)

    with serving(trickle) as server:
        started = time.monotonic()
        error = failure(f"{server.origin}/v.mp4", drop, timeout=1.0)
        elapsed = time.monotonic() - started
    assert error.retryable and "took longer than 1 s" in error.reason
    assert elapsed < 1.0 + SLACK
    assert dot_files(drop) == []


def test_a_server_that_never_answers_ends_at_the_deadline(drop: Path) -> None:
    def silent(handler: Handler, server: Server) -> None:
        server.stop.wait(10)

    with serving(silent) as server:
        started = time.monotonic()
        error = failure(f"{server.origin}/v.mp4", drop, timeout=1.0)
        elapsed = time.monotonic() - started
        server.stop.set()
    assert error.retryable and elapsed < 1.0 + SLACK


def test_a_refused_connection_is_retryable(drop: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = failure(f"http://127.0.0.1:{port}/v.mp4", drop)
    assert error.retryable and "network error" in error.reason


def test_no_connection_stays_open_after_a_failure(drop: Path) -> None:
    # The error's traceback holds the session's pool: its connections are closed all the same.
    with serving(serve_bytes(MP4 + b"junk")) as server:
        with pytest.raises(DownloadError) as caught:
            fetch(f"{server.origin}/v.mp4", drop)
        assert open_sockets_to(server.server_address[1]) == []
    assert caught.value.reason


def test_a_stop_cancels_a_download_under_way(drop: Path) -> None:
    """`cancel_downloads` (the generator's stop) ends a download blocked on a silent CDN at once, as a
    retryable failure with no temporary left: a stop never waits out the 900 s download deadline."""
    started = threading.Event()

    def silent(handler: Handler, server: Server) -> None:
        started.set()
        server.stop.wait(30)

    errors: list[DownloadError] = []

    def fetch_in_thread() -> None:
        try:
            fetch(f"{server.origin}/v.mp4", drop, timeout=600.0)
        except DownloadError as exc:
            errors.append(exc)

    with serving(silent) as server:
        thread = threading.Thread(target=fetch_in_thread)
        thread.start()
        wait_for(started.is_set, 10, "the request to reach the server")
        cancel_downloads()
        wait_for(lambda: errors, 10, "the download to end")
        server.stop.set()
        thread.join(10)
    assert errors[0].retryable and "stopping" in errors[0].reason
    assert dot_files(drop) == []
