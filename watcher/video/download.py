"""Fetching a finished video into `output_dir` (SPEC §8; THREAT_MODEL rules 1 and 4): no credential sent,
few http(s) redirects, bounded size and time; a temporary dot-file in a folder reached without following
a symlink, checked to be an MP4, fsynced, then linked to the first free name."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

from watcher import __version__
from watcher.core.media import MP4, SNIFF_BYTES, identify
from watcher.core.outcome import bounded_text
from watcher.core.signature import COARSE_CLOCK_SLACK
from watcher.disk.files import OutsideRootError, components_below, fsync_folder, made_folder, write_all
from watcher.disk.mover import candidate_names, why_not_moved
from watcher.disk.records import temporary_name
from watcher.redact import redact
from watcher.upload.client import pool_manager
from watcher.upload.deadlines import Attempt, deadlines, this_thread
from watcher.video.client import close_pools
from watcher.video.mp4 import looks_like_mp4

MAX_REDIRECTS = 3
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0  # the longest wait for one read; `timeout` bounds the whole download
CHUNK = 1 << 20
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What a download sends: never an Authorization (nor the token), and the bytes as stored, never inflated.
HEADERS = {"User-Agent": f"minimax-watcher/{__version__}", "Accept-Encoding": "identity"}
# MP4 temporaries older than this module (imported before this process's first download) are what a
# killed agent left (`temporary_name`'s form).
_STARTED = time.time() - COARSE_CLOCK_SLACK
_LEFTOVER = re.compile(r"\..+\.mp4\.[0-9a-f]{8}\.tmp", re.DOTALL)
_swept: set[tuple[int, int]] = set()  # the folders swept by this process (device, inode)
_swept_lock = threading.Lock()


@dataclass(frozen=True)
class Downloaded:
    path: str  # absolute path of the MP4 on disk
    size: int
    sha256: str


class DownloadError(Exception):
    """Why a video could not be fetched; `retryable` when trying again later may work (a cut
    connection, a timeout, a busy server), not when it cannot (refused, not an MP4, too big, a path)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


_live: set[Attempt] = set()  # downloads under way, for `cancel_downloads`
_live_lock = threading.Lock()


def cancel_downloads(message: str = "the agent is stopping") -> None:
    """End every download under way now (their sockets shut by the deadline watch): a stop must not wait
    for a slow CDN. Each raises a retryable DownloadError; the video is fetched again later."""
    with _live_lock:
        live = list(_live)
    for attempt in live:
        deadlines.move(attempt, time.monotonic(), message)


def download_video(
    url: str, *, root: str, dest: str, max_bytes: int = 4 << 30, timeout: float = 900.0
) -> Downloaded:
    """Fetch `url` to `dest` (`<stem>.mp4`, or `<stem>-1.mp4`... when taken), reaching its folder from
    `root` without following a symlink; raises DownloadError."""
    try:
        components_below(root, dest)
    except OutsideRootError:
        raise DownloadError(f"{dest} is not inside {root}", retryable=False) from None
    folder, name = os.path.split(dest)
    attempt = Attempt(
        time.monotonic() + timeout,
        f"the download took longer than {timeout:g} s",
        send_socket_timeout=CONNECT_TIMEOUT,
    )
    with ExitStack() as stack:
        try:
            # First the folder: a refused path costs no request.
            dir_fd = stack.enter_context(made_folder(root, folder))
        except OSError as exc:
            raise DownloadError(
                f"cannot write into {folder}: {why_not_moved(exc)}", retryable=False
            ) from None
        _sweep_leftovers(dir_fd)
        deadlines.hold()
        stack.callback(deadlines.release)
        deadlines.begin(attempt)
        # The connections learn the attempt from the thread: the watch shuts their socket at the deadline.
        this_thread.attempt = attempt
        stack.callback(deadlines.end, attempt)
        with _live_lock:
            _live.add(attempt)
        stack.callback(_forget, attempt)
        stack.callback(setattr, this_thread, "attempt", None)
        response = stack.enter_context(_get(url, attempt))
        size, digest, final = _store(response, dir_fd, folder, name, max_bytes, attempt)
    return Downloaded(path=f"{folder}/{final}", size=size, sha256=digest)


def _forget(attempt: Attempt) -> None:
    with _live_lock:
        _live.discard(attempt)


@contextmanager
def _get(url: str, attempt: Attempt) -> Iterator[urllib3.BaseHTTPResponse]:
    """The answer of `url` after at most MAX_REDIRECTS redirects, each to http(s); raises DownloadError
    for an answer that is not 200. urllib3 directly, as for uploads (requests' session would cost 4 MB of
    every agent that downloads): no netrc, no credentials from the URL, proxies from the environment
    (`pool_manager`, for each host in turn)."""
    for _ in range(MAX_REDIRECTS + 1):
        _check_scheme(url)
        try:
            manager = pool_manager(url, 1)
        except _BAD_URL:
            raise DownloadError("the download URL cannot be used", retryable=False) from None
        try:
            try:
                response = manager.urlopen(
                    "GET",
                    url,
                    headers=HEADERS,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    timeout=urllib3.Timeout(*_timeouts(attempt)),
                )
            except _BAD_URL:
                raise DownloadError("the download URL cannot be used", retryable=False) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise _network_error(exc, attempt) from None
            if response.status == 200:
                try:
                    yield response
                finally:
                    response.release_conn()
                return
            status, location = response.status, response.headers.get("Location")
            response.release_conn()
        finally:
            close_pools(manager)
        if status in REDIRECT_STATUSES and location:
            try:
                url = urljoin(url, location)
            except ValueError:
                raise DownloadError(
                    "the download redirected to a URL that cannot be used", retryable=False
                ) from None
            continue
        retryable = status == 429 or status >= 500
        raise DownloadError(f"the download answered HTTP {status}", retryable=retryable)
    raise DownloadError(f"the download redirected more than {MAX_REDIRECTS} times", retryable=False)


_BAD_URL = (urllib3.exceptions.LocationValueError, UnicodeError, ValueError)


def _check_scheme(url: str) -> None:
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        # The scheme only: a URL may carry credentials of its own (a signed link).
        shown = bounded_text(scheme, 20)
        raise DownloadError(f"not an http(s) URL ({shown or 'no scheme'})", retryable=False)


def _network_error(exc: BaseException, attempt: Attempt) -> DownloadError:
    if attempt.expired is not None or time.monotonic() >= attempt.expires_at:
        return DownloadError(attempt.message, retryable=True)
    return DownloadError(f"network error: {_describe(exc)}", retryable=True)


def _timeouts(attempt: Attempt) -> tuple[float, float]:
    remaining = max(0.1, attempt.expires_at - time.monotonic())
    return min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining)


def _sweep_leftovers(dir_fd: int) -> None:
    """Once per folder and process: remove the MP4 temporaries a killed agent left there (regular files
    named as `temporary_name` names them, last written before this process started; never followed)."""
    try:
        info = os.fstat(dir_fd)
        with _swept_lock:
            if (info.st_dev, info.st_ino) in _swept:
                return
            _swept.add((info.st_dev, info.st_ino))
        # `dir_fd` is an O_PATH descriptor: the folder itself ("."), opened for reading, is listed.
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        names = os.listdir(listing)
    except OSError:
        return
    finally:
        os.close(listing)
    for name in names:
        if not _LEFTOVER.fullmatch(name):
            continue
        try:
            found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(found.st_mode) and found.st_mtime < _STARTED:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            continue


def _store(
    response: urllib3.BaseHTTPResponse, dir_fd: int, folder: str, name: str, max_bytes: int, attempt: Attempt
) -> tuple[int, str, str]:
    """The body into a temporary in `dir_fd`, checked, fsynced and linked to a free name: its size,
    sha256 and name."""
    declared = _declared_length(response)
    if declared is not None and declared > max_bytes:
        raise DownloadError(
            f"the video is {declared} bytes, over the {max_bytes}-byte limit", retryable=False
        )
    tmp = temporary_name(name)
    try:
        fd = os.open(
            tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
        )
        try:
            try:
                size, digest = _write_body(response, fd, max_bytes, attempt)
                _check_whole(fd, size, declared)
                os.fsync(fd)
            finally:
                os.close(fd)
            final = _link_free_name(dir_fd, tmp, name)
        finally:
            _unlink(dir_fd, tmp)
        fsync_folder(".", dir_fd)
    except OSError as exc:
        # A full disk or an I/O error may pass; every name taken will not.
        retryable = exc.errno != errno.EEXIST
        raise DownloadError(
            f"cannot write into {folder}: {why_not_moved(exc)}", retryable=retryable
        ) from None
    return size, digest, final


def _write_body(
    response: urllib3.BaseHTTPResponse, fd: int, max_bytes: int, attempt: Attempt
) -> tuple[int, str]:
    """Copy the body into `fd`, one socket read at a time: bounded in size, and in time between reads
    too (a server that has said `Connection: close` keeps its socket out of the watch's reach)."""

    digest = hashlib.sha256()
    size = 0
    head = b""
    while True:
        if time.monotonic() >= attempt.expires_at:
            raise DownloadError(attempt.message, retryable=True)
        try:
            chunk = response.read1(CHUNK, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if attempt.expired is not None:
                raise DownloadError(attempt.message, retryable=True) from None
            raise DownloadError(f"the download was cut short ({_describe(exc)})", retryable=True) from None
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise DownloadError(f"the video is larger than the {max_bytes}-byte limit", retryable=False)
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
            if len(head) == SNIFF_BYTES and identify(head) is not MP4:
                raise DownloadError(_not_mp4(response), retryable=False)  # no need to fetch the rest
        write_all(fd, chunk)
        digest.update(chunk)
    if attempt.expired is not None:
        raise DownloadError(attempt.message, retryable=True)  # an end of stream the watch caused
    return size, digest.hexdigest()


def _check_whole(fd: int, size: int, declared: int | None) -> None:
    if looks_like_mp4(fd, size):
        return
    head = os.pread(fd, SNIFF_BYTES, 0)
    if identify(head) is MP4 and declared is None:
        # An MP4's beginning, then the connection ended where no box does: the end was a cut.
        raise DownloadError("the download was cut short (its boxes do not add up)", retryable=True)
    raise DownloadError("the download is not a complete MP4 (its boxes do not add up)", retryable=False)


def _link_free_name(dir_fd: int, tmp: str, name: str) -> str:
    """Link the temporary to the first free name among `name`, `name-1`...; never replaces a file
    (a link fails on any existing name, a dropper's symlink included)."""
    for candidate in candidate_names(name):
        try:
            os.link(tmp, candidate, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "every name is taken", name)


def _declared_length(response: urllib3.BaseHTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _not_mp4(response: urllib3.BaseHTTPResponse) -> str:
    kind = bounded_text(response.headers.get("Content-Type", ""), 60)
    return "the download is not an MP4" + (f" (it says {kind})" if kind else "")


def _unlink(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _describe(exc: BaseException) -> str:
    """A short reason, redacted; never the URL (a signed CDN URL carries credentials of its own)."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = type(inner).__name__
    if isinstance(inner, OSError) and inner.strerror:
        text += f": {inner.strerror}"
    return bounded_text(redact(text), 200)
