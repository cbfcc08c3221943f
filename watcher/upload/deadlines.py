"""Every upload attempt bounded in time, whatever the server does (socket timeouts bound each read only).

One thread watches every attempt's deadline and shuts its socket down when it passes; `WatchedConnection`
extends urllib3's connections so that each knows the attempt it carries.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.poolmanager import PoolManager


class Attempt:
    """One POST under watch: when it must next have moved on, and what to say if it has not."""

    def __init__(self, expires_at: float, message: str, send_socket_timeout: float) -> None:
        self.expires_at = expires_at
        self.message = message
        self.send_socket_timeout = send_socket_timeout
        self.connection: WatchedConnection | None = None
        # The failure's text once the deadline has passed and the socket was shut down.
        self.expired: str | None = None


class DeadlineWatch:
    """One thread for the whole process that shuts down the socket of every attempt past its deadline.

    Shutting the socket down (not closing it) wakes the worker blocked in send or recv on Linux at once,
    with an error or an end of stream, and leaves the descriptor for urllib3 to close as usual.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._attempts: set[Attempt] = set()
        self._thread: threading.Thread | None = None
        # When the thread wakes next on its own (None: only when notified).
        self._wakes_at: float | None = None
        # Open clients (`hold`): the thread, started at the first attempt, ends once none is left and
        # no attempt is under watch.
        self._users = 0

    def hold(self) -> None:
        with self._changed:
            self._users += 1

    def release(self) -> None:
        """A client closed; the last one ends the thread (once the attempts still under watch end)."""
        with self._changed:
            self._users -= 1
            thread = self._thread
            if self._users > 0 or thread is None or self._attempts:
                return
            self._changed.notify()
        thread.join()

    def begin(self, attempt: Attempt) -> None:
        with self._changed:
            self._attempts.add(attempt)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="upload-deadlines", daemon=True)
                self._thread.start()
            # Waking the thread for a deadline after the one it waits for would only cost a thread switch
            # per upload.
            if self._wakes_at is None or attempt.expires_at < self._wakes_at:
                self._changed.notify()

    def move(self, attempt: Attempt, expires_at: float, message: str) -> None:
        with self._changed:
            if attempt.expired is not None:
                return
            attempt.expires_at = expires_at
            attempt.message = message
            # A later one is noticed when the thread wakes for the earlier time it waits for.
            if self._wakes_at is None or expires_at < self._wakes_at:
                self._changed.notify()

    def bind(self, attempt: Attempt, connection: WatchedConnection) -> None:
        """The connection that carries `attempt` (a new one, or one reused from the pool)."""
        with self._changed:
            attempt.connection = connection
            connection.attempt = attempt
            if attempt.expired is not None:
                cut_connection(connection)

    def end(self, attempt: Attempt) -> str | None:
        """Stop watching; the failure's text if the deadline passed first."""
        with self._changed:
            self._attempts.discard(attempt)
            if attempt.connection is not None and attempt.connection.attempt is attempt:
                attempt.connection.attempt = None
            if not self._attempts and self._users <= 0:
                self._changed.notify()  # the last client has closed: the thread can end
            return attempt.expired

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                next_at: float | None = None
                for attempt in list(self._attempts):
                    if attempt.expires_at <= now:
                        self._attempts.discard(attempt)
                        attempt.expired = attempt.message
                        connection = attempt.connection
                        # A connection back in the pool may already carry another attempt: leave it be.
                        if connection is not None and connection.attempt is attempt:
                            cut_connection(connection)
                    elif next_at is None or attempt.expires_at < next_at:
                        next_at = attempt.expires_at
                if not self._attempts and self._users <= 0:
                    self._thread = None  # begin() starts another if a client comes
                    return
                self._wakes_at = next_at
                self._changed.wait(None if next_at is None else next_at - now)
                self._wakes_at = None  # awake: whatever changes now is seen by the next pass


deadlines = DeadlineWatch()
# The attempt the calling thread is making: urllib3 uses a connection in the thread that asked for it,
# so this is how a connection learns which attempt it carries.
this_thread = threading.local()


def current_attempt() -> Attempt | None:
    attempt: Attempt | None = getattr(this_thread, "attempt", None)
    return attempt


def cut_connection(connection: HTTPConnection) -> None:
    sock: Any = connection.sock
    # Through TLS: shut the TCP socket itself down (SSLSocket.shutdown would also drop its TLS state
    # under the feet of the thread using it); an SSLTransport (TLS inside a TLS proxy) wraps a socket.
    while sock is not None and not isinstance(sock, socket.socket):
        sock = getattr(sock, "socket", None)
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected


class WatchedConnection(HTTPConnection):
    """Mixed into urllib3's connection classes: ties the connection to the attempt of its thread."""

    # The attempt this connection carries now; only changed under the DeadlineWatch lock.
    attempt: Attempt | None = None

    def connect(self) -> None:
        attempt = current_attempt()
        if attempt is not None:
            deadlines.bind(attempt, self)  # before the TCP and TLS handshakes, which can trickle too
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt = current_attempt()
        if attempt is not None:
            if self.sock is None:
                self.connect()  # under the connect timeout, as http.client would
            deadlines.bind(attempt, self)
            # urllib3 sends the body under the connect timeout, and sendall() counts it for the whole
            # chunk: 1 MiB in 10 s would be the slowest uplink that works. The deadline watch bounds the
            # send; this only backs it up.
            self.timeout = attempt.send_socket_timeout
        super().request(*args, **kwargs)


_watched_classes: dict[type, type] = {}


def _watched(pool_class: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """`pool_class` whose connections are `WatchedConnection`s (for plain, TLS and SOCKS pools alike)."""
    if issubclass(pool_class.ConnectionCls, WatchedConnection):
        return pool_class
    if pool_class not in _watched_classes:
        connection_class = type(
            f"Watched{pool_class.ConnectionCls.__name__}", (WatchedConnection, pool_class.ConnectionCls), {}
        )
        _watched_classes[pool_class] = type(
            f"Watched{pool_class.__name__}", (pool_class,), {"ConnectionCls": connection_class}
        )
    return _watched_classes[pool_class]


def watch_pools_of(manager: PoolManager) -> None:
    manager.pool_classes_by_scheme = {
        scheme: _watched(pool_class) for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }
