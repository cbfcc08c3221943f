"""The useapi.net MiniMax files client: one streaming POST per file over a reused connection.

The body is read in large chunks and hashed in the same pass: memory stays flat and the sidecar's sha256
is the hash of the bytes sent. Every attempt is bounded in time (`watcher.upload.deadlines`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import certifi
import urllib3
from urllib3.poolmanager import PoolManager, ProxyManager

from watcher import __version__
from watcher.core.api_owner import ApiOwner
from watcher.core.outcome import (
    FailureClass,
    FileChanged,
    UploadFailure,
    UploadOutcome,
    UploadSuccess,
    bounded_text,
    classify_status,
    is_valid_file_id,
    temporary,
    valid_oss_path,
)
from watcher.core.retry import parse_retry_after
from watcher.upload.deadlines import Attempt, deadlines, this_thread, watch_pools_of

READ_CHUNK = 1 << 20
BACKGROUND_HASH_FROM = 8 << 20
MAX_ANSWER_BYTES = 1 << 20
CONNECT_TIMEOUT = 10.0
# The longest single wait for a byte of the answer (the deadline below bounds the whole answer).
READ_TIMEOUT = 180.0
# The API answers only once it has stored the whole body, about a minute per GB by its docs, so the
# time allowed for the answer grows with the size: 120 s plus 90 s per GB. Even for the largest file
# (5 GB: 570 s) it stays below the agent's STALLED_AFTER (600 s), so a legitimate wait never stops the
# systemd watchdog pings.
ANSWER_DEADLINE = 120.0
ANSWER_SECONDS_PER_GB = 90.0
# The longest the API may take to accept one READ_CHUNK of the body (at least ~17 KiB/s), and to connect
# and accept the first one. A server that stops reading the body is given up on after this.
SEND_STALL_TIMEOUT = 60.0

ProgressCallback = Callable[[int], None]


class _FileShrank(Exception):
    """Raised from inside the request body when the file ends before its announced size."""


class HashingReader:
    """A file-like body for requests: exactly `size` bytes from `fd`, hashed as they are read.

    For large bodies each chunk is hashed on a helper thread while the socket sends it (hashlib and
    sendall both release the GIL), one chunk behind at most, so hashing does not halve the throughput;
    the thread is the body's own, ended by `hexdigest` or `close`.
    """

    def __init__(
        self,
        fd: int,
        size: int,
        progress: ProgressCallback | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._fd = fd
        self._size = size
        self._progress = progress
        # Called when the sender asks for more after the last byte: the whole body has been handed to
        # the socket.
        self._on_end = on_end
        self.sent = 0
        self.shrank = False
        self._hash = hashlib.sha256()
        self._background = size >= BACKGROUND_HASH_FROM
        self._pending: Future[None] | None = None
        self._hasher: ThreadPoolExecutor | None = None
        os.lseek(fd, 0, os.SEEK_SET)

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self.sent
        if remaining <= 0:
            if self._on_end is not None:
                self._on_end()
                self._on_end = None
            return b""
        chunk = os.read(self._fd, min(n if n > 0 else READ_CHUNK, remaining))
        if not chunk:
            self.shrank = True
            raise _FileShrank
        if self._background:
            if self._pending is not None:
                self._pending.result()  # keeps the updates in order
            if self._hasher is None:
                self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
            self._pending = self._hasher.submit(self._hash.update, chunk)
        else:
            self._hash.update(chunk)
        self.sent += len(chunk)
        if self._progress is not None:
            self._progress(self.sent)
        return chunk

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Wait for the chunk being hashed and end the helper thread (the body is done with)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        if self._hasher is not None:
            self._hasher.shutdown()
            self._hasher = None


def api_headers(token: str) -> dict[str, str]:
    """What every request to the configured API carries (and nothing else does: the token)."""
    return {
        "Authorization": f"Bearer {token}",
        "User-Agent": f"minimax-watcher/{__version__}",
        "Accept": "application/json",
    }


def pool_manager(url: str, pool_size: int) -> PoolManager:
    """urllib3's pool for `url`, through the proxy the environment names for it (read once, here), with
    every connection under the deadline watch.

    urllib3 directly, not a requests.Session: the session's per-request work (merging settings, preparing,
    hooks, reading the CA bundle's path) was a sixth of the agent's CPU in a burst of small files. What
    requests did besides, this does too: proxies and NO_PROXY from the environment, Proxy-Authorization
    from the proxy URL, the CA bundle of REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE else certifi's.
    """
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    options: dict[str, Any] = {
        "num_pools": 1,
        "maxsize": max(1, pool_size),
        # urllib3's default 16 KiB costs far more system calls for the body.
        "blocksize": READ_CHUNK,
        "cert_reqs": "CERT_REQUIRED",
    }
    options["ca_cert_dir" if os.path.isdir(ca_bundle) else "ca_certs"] = ca_bundle
    proxy = _environment_proxy(url)
    manager: PoolManager
    if not proxy:
        manager = PoolManager(**options)
    elif proxy.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as requests does for socks

        manager = SOCKSProxyManager(proxy, **options)
    else:
        import requests.utils

        username, password = requests.utils.get_auth_from_url(proxy)
        headers = urllib3.make_headers(proxy_basic_auth=f"{username}:{password}") if username else None
        manager = ProxyManager(
            proxy if "://" in proxy else f"http://{proxy}", proxy_headers=headers, **options
        )
    watch_pools_of(manager)
    return manager


def _environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, ALL_PROXY..., minus NO_PROXY), by
    requests' rules; requests is imported only when some *_proxy variable is set (a tenth of a second
    of every start otherwise)."""
    if not any(name.lower().endswith("_proxy") and name.lower() != "no_proxy" for name in os.environ):
        return None
    import requests.utils

    proxy: str | None = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    return proxy


class UploadClient:
    """Posts files to `{base_url}/files/`; thread-safe, one connection pool shared by all workers."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        pool_size: int = 4,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        answer_deadline: float = ANSWER_DEADLINE,
        answer_seconds_per_gb: float = ANSWER_SECONDS_PER_GB,
        send_stall_timeout: float = SEND_STALL_TIMEOUT,
    ) -> None:
        self.url = base_url.rstrip("/") + "/files/"
        self.owner = ApiOwner.of(base_url, token)  # whose fileIDs its answers are (`watcher.core.api_owner`)
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._connect_timeout = connect_timeout
        self._answer_deadline = answer_deadline
        self._answer_seconds_per_gb = answer_seconds_per_gb
        self._send_stall_timeout = send_stall_timeout
        self._pool = pool_manager(self.url, pool_size)
        deadlines.hold()
        self._closed = False
        self._headers = api_headers(token)

    def close(self) -> None:
        self._pool.clear()
        if not self._closed:
            self._closed = True
            deadlines.release()

    def answer_limit(self, size: int) -> float:
        """Seconds the API may take to answer, from the end of a `size`-byte body to its answer's end."""
        return self._answer_deadline + self._answer_seconds_per_gb * size / 1e9

    def post_file(
        self,
        fd: int,
        size: int,
        content_type: str,
        account: str | None,
        progress: ProgressCallback | None = None,
    ) -> UploadOutcome:
        """Send `size` bytes of the open file `fd`; never raises for network or API trouble.

        `progress` is called with the bytes sent so far after each chunk the API takes.
        """
        stall = self._send_stall_timeout
        stalled = f"the API stopped taking the upload for {_seconds(stall)} s; retried"
        attempt = Attempt(
            time.monotonic() + self._connect_timeout + stall, stalled, send_socket_timeout=2 * stall
        )
        answer_limit = self.answer_limit(size)

        def chunk_taken(sent: int) -> None:
            deadlines.move(attempt, time.monotonic() + stall, stalled)
            if progress is not None:
                progress(sent)

        def body_sent() -> None:
            late = f"the API took longer than {_seconds(answer_limit)} s to answer; retried"
            deadlines.move(attempt, time.monotonic() + answer_limit, late)

        body = HashingReader(fd, size, chunk_taken, on_end=body_sent)
        deadlines.begin(attempt)
        this_thread.attempt = attempt
        try:
            outcome = self._post(body, size, content_type, account)
        finally:
            this_thread.attempt = None
            expired = deadlines.end(attempt)
            body.close()
        if expired is not None:
            # Whatever came of it (an error, or an answer cut short that may even parse), it is void.
            return temporary(expired, "timeout")
        return outcome

    def _post(self, body: HashingReader, size: int, content_type: str, account: str | None) -> UploadOutcome:
        url = f"{self.url}?{urlencode({'account': account})}" if account else self.url
        headers = {**self._headers, "Content-Type": content_type, "Content-Length": str(size)}
        try:
            response = self._pool.urlopen(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=self._timeout,
                preload_content=False,
                # A failed attempt is the scheduler's to retry, on its schedule.
                retries=False,
                # A redirect would turn the POST into a GET without the body; the base URL is wrong.
                redirect=False,
            )
        except _FileShrank:
            return FileChanged("the file became shorter while it was being uploaded")
        except urllib3.exceptions.TimeoutError as exc:
            # A refused or unresolvable connection is a ConnectTimeoutError too, for urllib3's history.
            if not isinstance(exc, urllib3.exceptions.NewConnectionError):
                return temporary("the API did not answer in time", "timeout")
            return temporary(f"network error: {describe_error(exc)}", "network")
        except (urllib3.exceptions.HTTPError, OSError, UnicodeError, ValueError) as exc:
            # ValueError and UnicodeError: a header value http.client refuses (the token is checked at
            # config time, so this is a bug elsewhere; it must still not kill the worker or leak).
            if body.shrank:
                return FileChanged("the file became shorter while it was being uploaded")
            return temporary(f"network error: {describe_error(exc)}", "network")
        try:
            # Read at most MAX_ANSWER_BYTES: a hostile or broken server cannot make us buffer more.
            answer = response.read(MAX_ANSWER_BYTES + 1, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            response.close()
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                return temporary("the API did not answer in time", "timeout")
            return temporary(f"network error while reading the answer: {describe_error(exc)}", "network")
        if len(answer) > MAX_ANSWER_BYTES:
            response.close()  # the rest is never read: the connection cannot carry another request
            return temporary(f"the API's answer is larger than {MAX_ANSWER_BYTES} bytes", "network")
        response.release_conn()
        return _interpret(response, answer, body, size, content_type)


def _interpret(
    response: urllib3.BaseHTTPResponse, answer: bytes, body: HashingReader, size: int, content_type: str
) -> UploadOutcome:
    try:
        payload: Any = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        payload = None
    status = response.status
    if status == 200:
        if not isinstance(payload, dict):
            return temporary("the API answered 200 with a body that is not JSON", 200)
        file_id = payload.get("fileID")
        if not isinstance(file_id, str) or not file_id:
            return temporary("the API answered 200 without a fileID", 200)
        if not is_valid_file_id(file_id):
            # Stored, it would be useless to videos/create, and one too long would make the sidecar
            # unreadable and the file upload again at every start.
            shown = bounded_text(file_id, 80)
            return temporary(
                f"the API answered 200 with a malformed fileID ({len(file_id)} chars): {shown}", 200
            )
        if body.sent != size:
            return temporary(f"only {body.sent} of {size} bytes were sent", "network")
        return UploadSuccess(
            file_id=file_id,
            oss_path=valid_oss_path(payload.get("ossPath")),
            sha256=body.hexdigest(),
            size=size,
            content_type=content_type,
        )
    message = ""
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message = bounded_text(payload["error"])
    reason = bounded_text(response.reason or "", 100)
    error = f"HTTP {status}" + (f": {message}" if message else f" {reason}".rstrip())
    failure_class = classify_status(status, message)
    retry_after = None
    if failure_class is not FailureClass.PERMANENT:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return UploadFailure(failure_class, error, status, retry_after)


def describe_error(exc: BaseException) -> str:
    """A short reason without URLs or headers (they never carry the token, but stay terse)."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    from watcher.redact import redact

    # The text may quote what the server sent (a bad status line, say), or the token: requests quotes a
    # header value it refuses. Redacted before it is cut short, so no part of a secret survives the cut.
    return bounded_text(redact(str(inner) or type(inner).__name__), 200)


def _seconds(value: float) -> str:
    return f"{round(value, 1):g}"
