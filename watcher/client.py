"""The useapi.net MiniMax files client: one streaming POST per file over a reused connection.

The body is read from disk in large chunks and hashed in the same pass, so memory stays flat whatever
the file's size and the sha256 in the sidecar is exactly the hash of the bytes that were sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from watcher import __version__
from watcher.outcome import (
    FailureClass,
    FileChanged,
    UploadFailure,
    UploadOutcome,
    UploadSuccess,
    classify_status,
    temporary,
)
from watcher.retry import parse_retry_after

READ_CHUNK = 1 << 20
BACKGROUND_HASH_FROM = 8 << 20
MAX_ANSWER_BYTES = 1 << 20
CONNECT_TIMEOUT = 10.0
# The API answers after it has stored the whole body; a stalled answer beyond this is retried.
READ_TIMEOUT = 180.0

ProgressCallback = Callable[[int], None]


class _FileShrank(Exception):
    """Raised from inside the request body when the file ends before its announced size."""


_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _hash_executor() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sha256")
        return _hash_pool


class HashingReader:
    """A file-like body for requests: exactly `size` bytes from `fd`, hashed as they are read.

    For large bodies each chunk is hashed on a helper thread while the socket sends it (hashlib and
    sendall both release the GIL), one chunk behind at most, so hashing does not halve the throughput.
    """

    def __init__(self, fd: int, size: int, progress: ProgressCallback | None = None) -> None:
        self._fd = fd
        self._size = size
        self._progress = progress
        self.sent = 0
        self.shrank = False
        self._hash = hashlib.sha256()
        self._background = size >= BACKGROUND_HASH_FROM
        self._pending: Future[None] | None = None
        os.lseek(fd, 0, os.SEEK_SET)

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self.sent
        if remaining <= 0:
            return b""
        chunk = os.read(self._fd, min(n if n > 0 else READ_CHUNK, remaining))
        if not chunk:
            self.shrank = True
            raise _FileShrank
        if self._background:
            if self._pending is not None:
                self._pending.result()  # keeps the updates in order
            self._pending = _hash_executor().submit(self._hash.update, chunk)
        else:
            self._hash.update(chunk)
        self.sent += len(chunk)
        if self._progress is not None:
            self._progress(self.sent)
        return chunk

    def hexdigest(self) -> str:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return self._hash.hexdigest()


class _LargeBlockAdapter(HTTPAdapter):
    """urllib3 reads a file body `blocksize` bytes at a time (16 KiB by default); 1 MiB is far cheaper."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = READ_CHUNK
        super().init_poolmanager(*args, **kwargs)


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
    ) -> None:
        self.url = base_url.rstrip("/") + "/files/"
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        # requests would otherwise re-read the environment for proxies and CA bundles on every request;
        # read it once here instead.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(self.url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self._session.verify = ca_bundle
        adapter = _LargeBlockAdapter(pool_connections=1, pool_maxsize=max(1, pool_size))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "User-Agent": f"minimax-watcher/{__version__}"}
        )

    def close(self) -> None:
        self._session.close()

    def post_file(
        self,
        fd: int,
        size: int,
        content_type: str,
        account: str | None,
        progress: ProgressCallback | None = None,
    ) -> UploadOutcome:
        """Send `size` bytes of the open file `fd`; never raises for network or API trouble."""
        body = HashingReader(fd, size, progress)
        params = {"account": account} if account else None
        try:
            response = self._session.post(
                self.url,
                params=params,
                data=body,
                headers={"Content-Type": content_type},
                timeout=self._timeout,
                stream=True,
                # A redirect would turn the POST into a GET without the body; the base URL is wrong.
                allow_redirects=False,
            )
        except _FileShrank:
            return FileChanged("the file became shorter while it was being uploaded")
        except requests.Timeout:
            return temporary("the API did not answer in time", "timeout")
        except requests.RequestException as exc:
            if body.shrank:
                return FileChanged("the file became shorter while it was being uploaded")
            return temporary(f"network error: {_describe(exc)}", "network")
        with response:
            try:
                # Read at most MAX_ANSWER_BYTES: a hostile or broken server cannot make us buffer more.
                answer = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                    return temporary("the API did not answer in time", "timeout")
                return temporary(f"network error while reading the answer: {_describe(exc)}", "network")
            if len(answer) > MAX_ANSWER_BYTES:
                return temporary(f"the API's answer is larger than {MAX_ANSWER_BYTES} bytes", "network")
            return _interpret(response, answer, body, size, content_type)


def _interpret(
    response: requests.Response, answer: bytes, body: HashingReader, size: int, content_type: str
) -> UploadOutcome:
    try:
        payload: Any = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        payload = None
    status = response.status_code
    if status == 200:
        if not isinstance(payload, dict):
            return temporary("the API answered 200 with a body that is not JSON", 200)
        file_id = payload.get("fileID")
        if not isinstance(file_id, str) or not file_id:
            return temporary("the API answered 200 without a fileID", 200)
        if body.sent != size:
            return temporary(f"only {body.sent} of {size} bytes were sent", "network")
        oss_path = payload.get("ossPath")
        return UploadSuccess(
            file_id=file_id,
            oss_path=oss_path if isinstance(oss_path, str) else "",
            sha256=body.hexdigest(),
            size=size,
            content_type=content_type,
        )
    message = ""
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message = payload["error"]
    error = f"HTTP {status}" + (f": {message}" if message else f" {response.reason or ''}".rstrip())
    failure_class = classify_status(status, message)
    retry_after = None
    if failure_class is not FailureClass.PERMANENT:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return UploadFailure(failure_class, error, status, retry_after)


def _describe(exc: BaseException) -> str:
    """A short reason without URLs or headers (they never carry the token, but stay terse)."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return text if len(text) <= 200 else text[:200] + "…"
