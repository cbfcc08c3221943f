"""The status page's WSGI app: its routes (GET and HEAD only), the headers every answer carries, HTTP
Basic beyond loopback, and `/api/status` (`watcher.report.status_report`, built at most every 2 s)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watcher.config.load import Config
from watcher.core.api_owner import ApiOwner
from watcher.page.files import NotServed, byte_range, open_done_image, open_done_video, parse_file_query
from watcher.page.thumbnails import NoThumbnail, Thumbnails, cache_key
from watcher.redact import redact
from watcher.report.listener import FileBody
from watcher.report.status_report import build_status

log = logging.getLogger("watcher")

STATIC_DIR = Path(__file__).parent / "static"
# Served by these names only; nothing else is read from disk by a name in the request.
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/static/format.js": ("format.js", "text/javascript; charset=utf-8"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
}
STATUS_SECONDS = 2.0
BUSY_SHARE = 5  # the status is built again after at least 5 times as long as its last build took
# Failures listed per folder (the page shows 50 in all; the counts stay whole): a dropper's million failed
# files would otherwise make a report of a gigabyte every 2 s.
MAX_FAILURES = 100
MAX_STATIC_BYTES = 1 << 20
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
REALM = 'Basic realm="minimax-watcher"'

StartResponse = Callable[..., Any]


class PageApp:
    """Answers for `config`'s folders, with the agent's `state_dir` and `owner` (whose sidecars count)."""

    def __init__(
        self,
        config: Config,
        state_dir: Path,
        owner: ApiOwner,
        password: bytes | None,
        *,
        static_dir: Path = STATIC_DIR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.password = config, password
        self._state_dir, self._owner = state_dir, owner
        self._static_dir, self._clock = static_dir, clock
        self._thumbnails = Thumbnails(state_dir / "thumbnails")
        self._status: tuple[float, bytes, frozenset[tuple[int, str]]] | None = None  # (due, body, videos)

    def update(self, config: Config, password: bytes | None) -> None:
        """A reload's config: the next status is built for it."""
        self.config, self.password, self._status = config, password, None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.password is not None and not _authorized(environ.get("HTTP_AUTHORIZATION"), self.password):
            return _answer(
                start_response, "401 Unauthorized", b"password required\n", [("WWW-Authenticate", REALM)]
            )
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"read only\n", [("Allow", "GET, HEAD")])
        path, query = environ["PATH_INFO"], environ.get("QUERY_STRING", "")
        if path in STATIC:
            return self._static(start_response, *STATIC[path])
        if path == "/api/status":
            body, _ = self.status()
            headers = [("Content-Type", "application/json")]
            return _answer(start_response, "200 OK", body, headers)
        try:
            if path == "/thumbnail":
                return self._thumbnail(start_response, query, environ.get("HTTP_IF_NONE_MATCH"))
            if path == "/video":
                return self._video(start_response, query, environ.get("HTTP_RANGE"))
        except NotServed as exc:
            log.debug("status page: %s?%s not served: %s", path, query[:200], exc)
        return _answer(start_response, "404 Not Found", b"not found\n")

    def status(self) -> tuple[bytes, frozenset[tuple[int, str]]]:
        """`/api/status`'s body, and the done videos it links to (the only ones `/video` serves)."""
        now = self._clock()
        if self._status is None or now >= self._status[0]:
            report = build_status(self.config, [self._state_dir], self._owner, max_failures=MAX_FAILURES)
            videos = frozenset(_video_links(report))
            # The walk of a huge folder is slow: the page spends at most a fifth of its time on it.
            spent = self._clock() - now
            self._status = (now + max(STATUS_SECONDS, BUSY_SHARE * spent), _json(report), videos)
        return self._status[1], self._status[2]

    def _static(self, start_response: StartResponse, name: str, content_type: str) -> Iterable[bytes]:
        try:
            with open(self._static_dir / name, "rb") as f:
                body = f.read(MAX_STATIC_BYTES)
        except OSError:
            return _answer(start_response, "404 Not Found", b"not found\n")
        return _answer(start_response, "200 OK", body, [("Content-Type", content_type)])

    def _thumbnail(self, start_response: StartResponse, query: str, etag: str | None) -> Iterable[bytes]:
        where, rel = parse_file_query(query, len(self.config.folders))
        folder = self.config.folders[where]
        fd, st = open_done_image(folder, rel, self._owner)
        try:
            key = cache_key(folder.path, rel, st)
            headers = [("ETag", f'"{key}"'), ("Cache-Control", "no-cache")]
            if etag == f'"{key}"':
                return _answer(start_response, "304 Not Modified", b"", headers)
            data = self._thumbnails.get(key, fd, os.path.join(folder.path, rel))
        except NoThumbnail as exc:
            raise NotServed(f"no thumbnail: {exc}") from None
        finally:
            os.close(fd)
        return _answer(start_response, "200 OK", data, [("Content-Type", "image/jpeg"), *headers])

    def _video(self, start_response: StartResponse, query: str, range_header: str | None) -> Iterable[bytes]:
        where, rel = parse_file_query(query, len(self.config.folders))
        folder = self.config.folders[where]
        _, done = self.status()
        fd, st = open_done_video(where, folder, rel, done)
        size = st.st_size
        headers = [("Content-Type", "video/mp4"), ("Accept-Ranges", "bytes"), ("Cache-Control", "no-cache")]
        try:
            asked = byte_range(range_header, size)
        except ValueError:
            os.close(fd)
            return _answer(
                start_response, "416 Range Not Satisfiable", b"", [("Content-Range", f"bytes */{size}")]
            )
        if asked is None:
            start_response("200 OK", [*SECURITY_HEADERS, *headers])
            return FileBody(fd, 0, size)
        first, last = asked
        start_response(
            "206 Partial Content",
            [*SECURITY_HEADERS, *headers, ("Content-Range", f"bytes {first}-{last}/{size}")],
        )
        return FileBody(fd, first, last - first + 1)


def _authorized(header: str | None, password: bytes) -> bool:
    """HTTP Basic with any user name and `password`, compared in constant time."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _, sep, given = decoded.partition(b":")
    return bool(sep) and hmac.compare_digest(given, password)


def _answer(
    start_response: StartResponse, status: str, body: bytes, headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    extra = list(headers)
    if not any(name == "Content-Type" for name, _ in extra):
        extra.append(("Content-Type", "text/plain; charset=utf-8"))
    if not any(name == "Cache-Control" for name, _ in extra):
        extra.append(("Cache-Control", "no-store"))
    start_response(status, [*SECURITY_HEADERS, *extra])
    return [body]


def _json(report: dict[str, Any]) -> bytes:
    """ASCII JSON (a name that is not UTF-8 as \\u escapes), no registered secret in it, and `<`, `>`,
    `&` escaped too: a name such as `<script>` is never markup, whatever reads the answer."""
    text = redact(json.dumps(report, ensure_ascii=True))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("ascii")


def _video_links(report: dict[str, Any]) -> Iterable[tuple[int, str]]:
    """(folder index, MP4 path) of each video the report links to (`videos.recent`)."""
    folders = report.get("folders", [])
    for entry in folders:
        for video in entry.get("videos", {}).get("recent", []):
            try:
                yield parse_file_query(str(video["video"]).partition("?")[2], len(folders))
            except NotServed:
                continue
