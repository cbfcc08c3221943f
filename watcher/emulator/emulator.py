"""The :class:`Emulator` object: its state (accounts, videos, pending faults, recorded requests), locks
and life. The HTTP side (:mod:`watcher.emulator.http`) reaches it only through its ``Backend`` interface.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from watcher.core.api_owner import user_of
from watcher.emulator.decision import Acceptance, Answer, Refusal, UploadRequest, decide, take_fault
from watcher.emulator.downloads import DownloadPlan, carries_token, plan_download
from watcher.emulator.faults import Fault
from watcher.emulator.http import API_PREFIX, Server
from watcher.emulator.records import (
    CreateRecord,
    DownloadRecord,
    OtherRecord,
    PollRecord,
    Record,
    RecordedRequest,
    describe,
    json_or_text,
    summarize_uploads,
)
from watcher.emulator.videos import Outcome, Studio

__all__ = ["Emulator"]

R = TypeVar("R", RecordedRequest, CreateRecord, PollRecord, DownloadRecord)

logger = logging.getLogger("watcher.emulator")

FILE_ID_BASE: Final = 380_000_000_000_000


class Emulator:
    """The MiniMax files and videos endpoints on a loopback port, served from a daemon thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. A video takes
    ``generation_seconds`` (its first fifth queued, then processing) on the ``clock``; each account runs
    at most ``max_jobs`` videos at once (a create beyond that is answered 429).
    """

    def __init__(
        self,
        *,
        token: str,
        accounts: Sequence[str] = ("123456",),
        host: str = "127.0.0.1",
        port: int = 0,
        uid: str | None = None,  # default: the token's own user id (`user:<id>-…`), else "1"
        poll_interval: float = 0.02,
        hash_bodies: bool = True,
        generation_seconds: float = 3.0,
        max_jobs: int = 3,
        clock: Callable[[], float] = time.monotonic,
        cdn_host: str | None = None,
    ) -> None:
        # Tests start and stop many emulators and want stop() quick; a long-running one (the CLI)
        # polls rarely, so an idle `run --emulate` costs no CPU.
        self._poll_interval = poll_interval
        if not token:
            raise ValueError("the emulator needs a non-empty token")
        if isinstance(accounts, str):  # a lone "123456" is a Sequence[str] of digits
            accounts = (accounts,)
        unique = tuple(dict.fromkeys(str(a) for a in accounts))
        if not unique or not all(unique):
            raise ValueError("the emulator needs at least one non-empty account")
        self._token = token
        self._accounts = unique
        self._host = host
        self._requested_port = port
        self._uid = uid if uid is not None else (user_of(token) or "1")
        # The benchmarks turn hashing off: a second sha256 of every byte would compete for the CPU with
        # the process being measured, and cap loopback throughput at the speed of sha256.
        self._hash_bodies = hash_bodies
        self._cdn_host = cdn_host
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults: list[Fault] = []
        self._requests: list[Record] = []
        self._studio = Studio(
            uid=self._uid,
            accounts=unique,
            generation_seconds=generation_seconds,
            max_jobs=max_jobs,
            clock=clock,
        )
        self._file_numbers = itertools.count(FILE_ID_BASE + 1)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stopping = threading.Event()
        self._held = 0

    def __repr__(self) -> str:  # never shows the token
        where = self.base_url if self._port is not None else "not started"
        return f"<Emulator {where} accounts={list(self._accounts)}>"

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve from a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if self._stopping.is_set():
            raise RuntimeError("a stopped emulator cannot be restarted; create a new one")
        server = Server((self._host, self._requested_port), self)
        self._server = server
        self._port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},  # how long stop() may wait
            name=f"minimax-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("emulator serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and release the port. Idempotent."""
        server, thread = self._server, self._thread
        self._stopping.set()  # also cuts "slow" faults short
        if server is None or thread is None:
            return
        self._server = None
        self._thread = None
        server.shutdown()
        server.server_close()
        server.close_all_connections()
        thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- addresses --------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (the wildcard addresses are shown as loopback)."""
        host = self._host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def cdn_origin(self) -> str:
        """Where videoURL and downloadURL point: this server, by ``cdn_host`` when one was given (another
        host name for the same server, as the real URLs point at a CDN, not at the API)."""
        return self.origin if self._cdn_host is None else f"http://{self._cdn_host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the client uses as ``api.base_url``, e.g. ``http://127.0.0.1:PORT/v1/minimax``."""
        return self.origin + API_PREFIX

    @property
    def accounts(self) -> tuple[str, ...]:
        return self._accounts

    @property
    def uid(self) -> str:
        return self._uid

    @property
    def hash_bodies(self) -> bool:
        """Whether bodies are hashed (else every record's ``sha256`` is None)."""
        return self._hash_bodies

    # -- held answers -----------------------------------------------------------------------------------

    def hold(self, delay: float) -> None:
        """A "slow" fault: the body has arrived; keep the answer back for `delay` seconds."""
        with self._changed:
            self._held += 1
            self._changed.notify_all()
        try:
            self._stopping.wait(delay)
        finally:
            with self._changed:
                self._held -= 1
                self._changed.notify_all()

    @property
    def held(self) -> int:
        """How many requests are being held by a "slow" fault right now (their bodies fully received)."""
        with self._lock:
            return self._held

    def wait_for_held(self, n: int, timeout: float) -> None:
        """Wait until at least `n` answers are being held back by "slow" faults."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= n, timeout):
                raise TimeoutError(f"{self._held} requests held after {timeout} s, expected {n}")

    # -- faults -----------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault (a copy is kept: the caller's object is not mutated)."""
        with self._lock:
            self._faults.append(dataclasses.replace(fault))

    def clear_faults(self) -> int:
        """Drop every pending fault; returns how many there were."""
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    @property
    def faults(self) -> list[Fault]:
        """Pending faults, FIFO order, with their remaining ``times``."""
        with self._lock:
            return [dataclasses.replace(f) for f in self._faults]

    # -- records ----------------------------------------------------------------------------------------

    def _records_of(self, cls: type[R]) -> list[R]:
        with self._lock:
            return [r for r in self._requests if isinstance(r, cls)]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request that reached the upload handler, oldest first (a copy)."""
        return self._records_of(RecordedRequest)

    @property
    def uploads(self) -> list[RecordedRequest]:
        """Only the successful uploads: 200 answers that carried a fileID."""
        with self._lock:
            return [r for r in self._requests if isinstance(r, RecordedRequest) and r.is_upload]

    @property
    def all_requests(self) -> list[Record]:
        """Every request but the control endpoints' (uploads, creates, polls, downloads, other), oldest
        first."""
        with self._lock:
            return list(self._requests)

    @property
    def creates(self) -> list[CreateRecord]:
        """Every ``POST videos/create``, whatever its answer (or none)."""
        return self._records_of(CreateRecord)

    @property
    def polls(self) -> list[PollRecord]:
        return self._records_of(PollRecord)

    @property
    def downloads(self) -> list[DownloadRecord]:
        return self._records_of(DownloadRecord)

    @property
    def token_leaks(self) -> list[DownloadRecord]:
        """Downloads that carried an ``Authorization`` header or the token: each one is a violation."""
        return [r for r in self.downloads if r.carried_token]

    def wait_for_records(self, kind: str, n: int, timeout: float) -> list[Record]:
        """Block until at least ``n`` requests of ``kind`` (``upload``, ``create``, ``poll``,
        ``download``, ``other``) are recorded; return them all. Raises TimeoutError after ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._of_kind(kind)) >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} {kind} request(s) within {timeout}s, got {len(self._of_kind(kind))}"
                )
            return self._of_kind(kind)

    def _of_kind(self, kind: str) -> list[Record]:  # caller holds the lock
        return [r for r in self._requests if r.kind == kind]

    def clear_requests(self) -> int:
        """Forget the recorded requests; returns how many there were."""
        with self._lock:
            count = len(self._requests)
            self._requests.clear()
            return count

    def wait_for_uploads(self, n: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``n`` successful uploads are recorded; return them all (or TimeoutError)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._count_uploads() >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} successful upload(s) within {timeout}s, got "
                    f"{self._count_uploads()}; requests so far: {self._summary()}"
                )
            return [r for r in self._requests if isinstance(r, RecordedRequest) and r.is_upload]

    def wait_for_requests(self, n: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``n`` upload requests (of any outcome) are recorded; return them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._of_kind("upload")) >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} request(s) within {timeout}s, got {len(self._of_kind('upload'))}: "
                    f"{self._summary()}"
                )
            return [r for r in self._requests if isinstance(r, RecordedRequest)]

    # -- the interface of the HTTP side (called from server threads) ---------------------------------------

    def decide(self, request: UploadRequest) -> Refusal | Acceptance:
        """Decide the answer to an upload, taking the fault that applies (if any) off the pending ones."""
        with self._lock:
            decision = decide(request, token=self._token, accounts=self._accounts, faults=self._faults)
            self._faults = list(decision.faults)
        return decision.outcome

    def next_file_number(self) -> int:
        with self._lock:
            return next(self._file_numbers)

    def record_other(self, method: str, path: str, status: int) -> None:
        """A request that reached no endpoint (a wrong path or method): kept, without the token."""
        self.record(OtherRecord.of(self._token, method, path, status))

    def record(self, request: Record) -> None:
        """Remember a request and wake whoever waits for it."""
        with self._changed:
            self._requests.append(request)
            if isinstance(request, RecordedRequest) and request.is_upload and request.account:
                self._studio.issue(request.account, str(request.file_id))
            self._changed.notify_all()
        if not isinstance(request, RecordedRequest):
            logger.info("emulator: %s", describe(request))  # told apart from the agent's own lines
            return
        logger.info(
            "emulator: upload account=%s type=%s size=%d -> %s%s",
            request.account,
            request.content_type,
            request.size,
            request.status or "no answer",
            f" [fault: {request.fault}]" if request.fault else "",
        )

    def _count_uploads(self) -> int:  # caller holds the lock
        return sum(1 for r in self._requests if isinstance(r, RecordedRequest) and r.is_upload)

    def _summary(self) -> str:  # caller holds the lock
        return summarize_uploads(self._requests)

    # -- videos -----------------------------------------------------------------------------------------

    @property
    def videos(self) -> list[dict[str, Any]]:
        """Every video made, as it is now (videoId, account, fileID, model, status, percent)."""
        with self._lock:
            return self._studio.videos()

    @property
    def settings(self) -> dict[str, Any]:
        with self._lock:
            studio = self._studio
            return {"generation_seconds": studio.generation_seconds, "max_jobs": studio.max_jobs}

    def configure(self, *, generation_seconds: float | None = None, max_jobs: int | None = None) -> None:
        """Change the generation time (of videos created from now on) or ``max_jobs`` (raises ValueError)."""
        with self._lock:
            self._studio.configure(generation_seconds=generation_seconds, max_jobs=max_jobs)

    def issue_file(self, account: str) -> str:
        """A fresh fileID of ``account``, as if a file had been uploaded (for tests of videos alone)."""
        if account not in self._accounts:
            raise ValueError(f"account {account!r} is not one of the emulator's")
        new_id = f"user:{self._uid}-minimax:{account}-file:{self.next_file_number()}"
        with self._lock:
            self._studio.issue(account, new_id)
        return new_id

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the emulator is stopping."""
        return not self._stopping.wait(seconds)

    def _take(self, target: str, account: str, video_id: str | None = None) -> Fault | None:
        # caller holds the lock
        fault, pending = take_fault(self._faults, account, target=target, video_id=video_id)
        self._faults = list(pending)
        return fault

    def video_create(self, authorization: str | None, raw: bytes | None, problem: Answer | None) -> Outcome:
        """Answer ``POST videos/create`` (the video is made here, before any answer goes out) and record it."""
        body: Any = None if raw is None else json_or_text(raw)
        if authorization != f"Bearer {self._token}":
            outcome = Outcome(Answer.error(401, "Unauthorized"))
        elif problem is not None:
            outcome = Outcome(problem)
        elif isinstance(body, str):
            outcome = Outcome(Answer.error(400, "The body must be JSON"))
        else:
            with self._lock:
                outcome = self._studio.create(body, lambda account: self._take("create", account))
        self.record(CreateRecord.of(outcome, body))
        return outcome

    def video_poll(self, authorization: str | None, video_id: str) -> Outcome:
        """Answer ``GET videos/{video_id}`` and record it."""
        if authorization != f"Bearer {self._token}":
            outcome = Outcome(Answer.error(401, "Unauthorized"))
        else:
            with self._lock:
                outcome = self._studio.poll(
                    video_id, lambda account, vid: self._take("poll", account, vid), self.cdn_origin
                )
        self.record(PollRecord.of(video_id, outcome))
        return outcome

    def download(self, name: str, path: str, headers: list[tuple[str, str]]) -> DownloadPlan:
        """What to send for a download below ``/_emulator/downloads/``; a request that carries the token
        is refused (403) and recorded as a leak."""
        carried = carries_token(self._token, path, headers)
        with self._lock:
            video = self._studio.downloadable(name)
            fault = (
                None if video is None or carried else self._take("download", video.account, video.video_id)
            )
        if carried:
            logger.warning(
                "emulator: a download carried the API token (an Authorization header or the token)"
            )
        plan = plan_download(fault, path, found=video is not None, carried=carried)
        video_id = None if video is None else video.video_id
        self.record(DownloadRecord.of(self._token, path, headers, video_id, plan, fault, carried))
        return plan
