"""The deadline watch against real loopback connections: a socket is shut down when its attempt's time is
up (and only then, and only while it still carries that attempt), and its one thread ends with its users."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from watcher.upload.deadlines import (
    Attempt,
    DeadlineWatch,
    WatchedConnection,
    deadlines,
    this_thread,
    watch_pools_of,
)

SAFETY = 10.0  # a socket timeout no test should reach: a cut that never comes fails, never hangs


class Server:
    """A loopback listener that accepts every connection, reads what it is sent and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                peer, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(peer)
        self.listener.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for peer in self.accepted:
            peer.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def new_watch_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in set(threading.enumerate()) - before if t.name == "upload-deadlines"]


@pytest.fixture
def watch() -> Iterator[DeadlineWatch]:
    before = set(threading.enumerate())
    w = DeadlineWatch()
    w.hold()
    yield w
    w.release()
    assert new_watch_threads(before) == [], "the last client's release() ends the thread"


def connected(server: Server) -> WatchedConnection:
    connection = WatchedConnection("127.0.0.1", server.port)
    connection.connect()
    assert connection.sock is not None
    connection.sock.settimeout(SAFETY)
    return connection


def seconds_until_cut(connection: WatchedConnection) -> float:
    """Blocks in recv as a worker waiting for an answer does; how long until the socket was shut down."""
    assert connection.sock is not None
    started = time.monotonic()
    assert connection.sock.recv(1) == b"", "the peer never writes: only a shutdown ends the recv"
    return time.monotonic() - started


def attempt_in(seconds: float, message: str = "too slow") -> Attempt:
    return Attempt(time.monotonic() + seconds, message, send_socket_timeout=SAFETY)


def test_a_socket_is_shut_down_when_its_attempt_is_past_its_deadline(
    watch: DeadlineWatch, server: Server
) -> None:
    connection = connected(server)
    attempt = attempt_in(0.3, "the API stopped taking the upload")
    watch.begin(attempt)
    watch.bind(attempt, connection)
    assert 0.2 < seconds_until_cut(connection) < SAFETY / 2
    assert watch.end(attempt) == "the API stopped taking the upload"
    connection.close()


def test_an_attempt_that_ends_in_time_is_not_cut_and_has_no_failure(
    watch: DeadlineWatch, server: Server
) -> None:
    connection = connected(server)
    attempt = attempt_in(0.3)
    watch.begin(attempt)
    watch.bind(attempt, connection)
    assert watch.end(attempt) is None
    assert connection.attempt is None, "the connection goes back to the pool carrying no attempt"
    time.sleep(0.5)
    assert connection.sock is not None
    connection.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        connection.sock.recv(1)  # still open: nothing shut it down
    connection.close()


def test_a_deadline_moved_later_is_the_one_that_counts_with_its_message(
    watch: DeadlineWatch, server: Server
) -> None:
    connection = connected(server)
    attempt = attempt_in(0.2, "stalled")
    watch.begin(attempt)
    watch.bind(attempt, connection)
    watch.move(attempt, time.monotonic() + 1.0, "late answer")
    assert seconds_until_cut(connection) > 0.8
    assert watch.end(attempt) == "late answer"
    connection.close()


def test_a_deadline_moved_earlier_wakes_the_watch(watch: DeadlineWatch, server: Server) -> None:
    connection = connected(server)
    attempt = attempt_in(60)
    watch.begin(attempt)
    watch.bind(attempt, connection)
    time.sleep(0.1)  # the thread now sleeps until the first deadline, a minute away
    watch.move(attempt, time.monotonic() + 0.2, "moved")
    assert seconds_until_cut(connection) < SAFETY / 2
    assert watch.end(attempt) == "moved"
    connection.close()


def test_an_earlier_attempt_begun_while_the_watch_waits_for_a_later_one_is_cut_alone(
    watch: DeadlineWatch, server: Server
) -> None:
    late, early = connected(server), connected(server)
    late_attempt, early_attempt = attempt_in(60, "late"), attempt_in(0.2, "early")
    watch.begin(late_attempt)
    watch.bind(late_attempt, late)
    time.sleep(0.1)
    watch.begin(early_attempt)
    watch.bind(early_attempt, early)
    assert seconds_until_cut(early) < SAFETY / 2
    assert watch.end(early_attempt) == "early"
    assert late_attempt.expired is None
    assert watch.end(late_attempt) is None
    late.close()
    early.close()


def test_a_connection_bound_after_its_attempt_expired_is_cut_at_once_and_a_late_move_is_ignored(
    watch: DeadlineWatch, server: Server
) -> None:
    attempt = attempt_in(-1, "expired before connecting")
    watch.begin(attempt)
    until = time.monotonic() + SAFETY
    while attempt.expired is None and time.monotonic() < until:
        time.sleep(0.01)
    watch.move(attempt, time.monotonic() + 60, "moved too late")
    connection = connected(server)
    watch.bind(attempt, connection)
    assert seconds_until_cut(connection) < 1
    assert watch.end(attempt) == "expired before connecting"
    connection.close()


def test_a_pooled_connection_now_carrying_another_attempt_is_left_alone(
    watch: DeadlineWatch, server: Server
) -> None:
    connection = connected(server)
    first = attempt_in(60, "first")
    watch.begin(first)
    watch.bind(first, connection)
    second = attempt_in(60, "second")
    watch.begin(second)
    watch.bind(second, connection)  # reused from the pool while the first is still under watch
    watch.move(first, time.monotonic() - 1, "first")
    until = time.monotonic() + SAFETY
    while first.expired is None and time.monotonic() < until:
        time.sleep(0.01)
    assert watch.end(first) == "first"
    assert connection.attempt is second
    server.accepted[-1].sendall(b"x")
    assert connection.sock is not None and connection.sock.recv(1) == b"x", "not shut down"
    assert watch.end(second) is None
    connection.close()


def test_the_thread_starts_with_the_first_attempt_and_ends_with_the_last_user() -> None:
    watch = DeadlineWatch()
    before = set(threading.enumerate())

    def running() -> list[threading.Thread]:
        return new_watch_threads(before)

    watch.hold()
    assert running() == []
    attempt = attempt_in(60)
    watch.begin(attempt)
    assert len(running()) == 1
    watch.end(attempt)
    time.sleep(0.1)
    assert len(running()) == 1, "a client is still open: the thread stays for its next attempt"
    watch.release()
    assert running() == [], "release() of the last client joins the thread"
    watch.hold()
    watch.begin(attempt := attempt_in(60))
    assert len(running()) == 1, "a client that comes later starts it again"
    watch.end(attempt)
    watch.release()
    assert running() == []


def test_pools_get_watched_connections_once() -> None:
    manager = urllib3.PoolManager()
    watch_pools_of(manager)
    classes = dict(manager.pool_classes_by_scheme)
    assert set(classes) == {"http", "https"}
    for pool_class in classes.values():
        assert issubclass(pool_class, urllib3.HTTPConnectionPool)
        assert issubclass(pool_class.ConnectionCls, WatchedConnection)
    watch_pools_of(manager)
    assert manager.pool_classes_by_scheme == classes, "not wrapped twice"
    other = urllib3.PoolManager()
    watch_pools_of(other)
    assert other.pool_classes_by_scheme == classes, "one class per pool class, shared"
    manager.clear()
    other.clear()


def test_a_request_made_under_an_attempt_is_cut_at_its_deadline_whatever_the_read_timeout(
    server: Server,
) -> None:
    manager = urllib3.PoolManager(timeout=urllib3.Timeout(connect=SAFETY, read=SAFETY), retries=False)
    watch_pools_of(manager)
    deadlines.hold()
    attempt = Attempt(time.monotonic() + 0.3, "no answer in time", send_socket_timeout=SAFETY)
    deadlines.begin(attempt)
    this_thread.attempt = attempt
    started = time.monotonic()
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            manager.request("POST", f"http://127.0.0.1:{server.port}/files/", body=b"x" * 1000)
    finally:
        this_thread.attempt = None
        expired = deadlines.end(attempt)
        manager.clear()
        deadlines.release()
    assert time.monotonic() - started < SAFETY / 2
    assert expired == "no answer in time"
