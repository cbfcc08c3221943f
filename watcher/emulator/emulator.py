"""The :class:`Emulator` object: its state (accounts, pending faults, recorded requests), locks and life.

The HTTP side (:mod:`watcher.emulator.http`) reaches it only through the methods of its ``Backend``
interface: :meth:`Emulator.decide`, :meth:`Emulator.hold`, :meth:`Emulator.next_file_number`,
:meth:`Emulator.record` and the public properties.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any, Final, Self

from watcher.core.api_owner import user_of
from watcher.emulator.decision import Acceptance, Refusal, UploadRequest, decide
from watcher.emulator.faults import Fault
from watcher.emulator.http import API_PREFIX, Server
from watcher.emulator.records import RecordedRequest

__all__ = ["Emulator", "serve_forever"]

logger = logging.getLogger("watcher.emulator")

FILE_ID_BASE: Final = 380_000_000_000_000


class Emulator:
    """The MiniMax files endpoint on a loopback port, served from a daemon thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
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
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
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

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request that reached the upload handler, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def uploads(self) -> list[RecordedRequest]:
        """Only the successful uploads: 200 answers that carried a fileID."""
        with self._lock:
            return [r for r in self._requests if r.is_upload]

    def clear_requests(self) -> int:
        """Forget the recorded requests; returns how many there were."""
        with self._lock:
            count = len(self._requests)
            self._requests.clear()
            return count

    def wait_for_uploads(self, n: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``n`` successful uploads are recorded; return them all.

        Raises TimeoutError after ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._count_uploads() >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} successful upload(s) within {timeout}s, got "
                    f"{self._count_uploads()}; requests so far: {self._summary()}"
                )
            return [r for r in self._requests if r.is_upload]

    def wait_for_requests(self, n: int, timeout: float) -> list[RecordedRequest]:
        """Block until at least ``n`` requests (of any outcome) are recorded; return them all.

        Raises TimeoutError after ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(
                    f"expected at least {n} request(s) within {timeout}s, got {len(self._requests)}: "
                    f"{self._summary()}"
                )
            return list(self._requests)

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

    def record(self, request: RecordedRequest) -> None:
        """Remember a request and wake whoever waits for it."""
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()
        logger.info(
            "upload account=%s type=%s size=%d -> %s%s",
            request.account,
            request.content_type,
            request.size,
            request.status or "no answer",
            f" [fault: {request.fault}]" if request.fault else "",
        )

    def _count_uploads(self) -> int:  # caller holds the lock
        return sum(1 for r in self._requests if r.is_upload)

    def _summary(self) -> str:  # caller holds the lock
        if not self._requests:
            return "none"
        shown = [
            f"{r.status or 'no answer'}{f' ({r.fault})' if r.fault else ''} account={r.account}"
            for r in self._requests[-10:]
        ]
        more = len(self._requests) - len(shown)
        return ("... " if more else "") + ", ".join(shown)


def serve_forever(*, token: str, accounts: Sequence[str], port: int, host: str = "127.0.0.1") -> None:
    """Run the emulator in the foreground until SIGINT (KeyboardInterrupt) or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # no-op if logging is configured
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous: Any = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        with Emulator(token=token, accounts=accounts, host=host, port=port, poll_interval=0.5) as emulator:
            logger.info("MiniMax API emulator listening on %s", emulator.base_url)
            logger.info(
                "accounts: %s%s",
                ", ".join(emulator.accounts),
                " (the account parameter may be omitted)"
                if len(emulator.accounts) == 1
                else " (the account parameter is required)",
            )
            logger.info("control endpoints: %s/_emulator/{requests,uploads,faults}", emulator.origin)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            logger.info("emulator stopping")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
