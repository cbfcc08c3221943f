"""The start-up helper: a child process that checks directories against the index on the second core.

It applies the same rule (`watcher.scan.vouching`) to the same disk, read-only, with no token and no
environment; what it does not vouch for, or everything if it fails, the agent checks itself. Messages
are marshal'd values prefixed with their length. See docs/architecture.md, 'The threads'.
"""

from __future__ import annotations

import logging
import marshal
import os
import sqlite3
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import watcher
from watcher.disk.files import open_directory, write_all
from watcher.scan.vouching import check_directory
from watcher.state.index import known_rows
from watcher.state.index_reader import open_read_only

log = logging.getLogger(__name__)

# What the helper has been given and not yet answered: enough to keep it busy while the agent handles
# an answer, few enough that the agent is rarely left waiting for the last ones.
IN_FLIGHT = 3
_LENGTH = 4
# The child imports only what it needs, from the package this process runs, whatever the environment.
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); from watcher.scan.helper import serve; serve()"
_LOCALE = ("LANG", "LC_ALL", "LC_CTYPE")  # names are decoded the same way on both sides

Checked = tuple[set[str], list[str]]  # (vouched names, known names no longer listed)
Key = tuple[str, str]  # (watched folder, directory)


class _Sent:
    __slots__ = ("key", "wanted")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.wanted = True  # False once its walk has ended without it: the answer is thrown away


class WalkHelper:
    """The agent's end: directories go out with `send`, answers come back with `answers`.

    Used by the scanner's thread; the reader thread only files answers under the lock.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.answered = 0  # directories it checked whose answers were taken (not those handed back)
        self._lock = threading.Condition()
        self._sent: deque[_Sent] = deque()  # in the order sent, not yet answered
        # Answers come in, kept as they came (a few hundred KB for 10,000 names, where the decoded set
        # would take a few MB) until their walk takes them: the scanner may be several folders away.
        self._ready: dict[Key, bytes | None] = {}
        self._alive = True
        self._reader = threading.Thread(target=self._read_answers, name="walk-helper", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, index_file: Path) -> WalkHelper | None:
        """A running helper that reads `index_file`, or None when none can be started."""
        if not sys.executable:
            return None  # an embedded interpreter: nothing to start a second one with
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(watcher.__file__)))
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOTSTRAP, package_parent],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={name: os.environ[name] for name in _LOCALE if name in os.environ},
                close_fds=True,
            )
        except OSError as exc:
            log.info(
                "cannot start the start-up helper (%s); the start-up scans run in one process", exc.strerror
            )
            return None
        helper = cls(process)
        with helper._lock:
            helper._write(str(index_file))
        return helper

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def in_flight(self) -> int:
        """Directories sent and not yet answered, whichever walk they are for."""
        with self._lock:
            return len(self._sent)

    def send(self, root: str, account: str, folder: str) -> None:
        """Check `folder`, a directory of the watched folder `root` mapped to `account`."""
        with self._lock:
            self._sent.append(_Sent((root, folder)))
            self._write((root, account, folder))
            if not self._alive:  # it has gone, maybe before this: the caller checks what it gave
                self._hand_back()

    def holds(self, root: str, folder: str) -> bool:
        """Whether `folder` of `root` was sent and its answer is still to be taken."""
        key = (root, folder)
        with self._lock:
            return key in self._ready or any(s.key == key and s.wanted for s in self._sent)

    def outstanding(self, root: str) -> int:
        """Directories of `root` sent whose answers are still to be taken."""
        with self._lock:
            return sum(1 for s in self._sent if s.key[0] == root and s.wanted) + sum(
                1 for key in self._ready if key[0] == root
            )

    def answers(self, root: str, *, wait: bool) -> Iterator[tuple[str, Checked | None]]:
        """The directories of `root` answered so far (with `wait`, at least one while any is out). A
        directory answered None, or left unanswered by a helper that died, is the caller's to check."""
        while True:
            with self._lock:
                mine = [key for key in self._ready if key[0] == root]
                if not mine:
                    if not wait or not any(s.key[0] == root and s.wanted for s in self._sent):
                        return
                    self._lock.wait()
                    continue
                taken = [(key[1], self._ready.pop(key)) for key in mine]
            wait = False
            for folder, payload in taken:
                checked = _checked(_loads(payload)) if payload is not None else None
                self.answered += checked is not None
                yield folder, checked

    def drop(self, root: str) -> None:
        """A walk of `root` has ended: answers for it, come or to come, are no one's and are thrown away
        (a later walk must not take a look that old)."""
        with self._lock:
            for key in [key for key in self._ready if key[0] == root]:
                del self._ready[key]
            for sent in self._sent:
                if sent.key[0] == root:
                    sent.wanted = False

    def close(self) -> None:
        log.debug("the start-up helper checked %d directories", self.answered)
        process = self._process
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            self._reader.join()
            if process.stdout is not None:
                process.stdout.close()

    # ---- the pipe --------------------------------------------------------------------------------

    def _write(self, value: object) -> None:
        """Under the lock, so that requests go out in the order they are queued."""
        if not self._alive or self._process.stdin is None:
            return
        try:
            self._process.stdin.write(_frame(value))
            self._process.stdin.flush()
        except (OSError, ValueError):  # it died (or was closed): what it was given is answered None
            self._alive = False

    def _read_answers(self) -> None:
        """The reader thread: files each answer under its directory as soon as it has come."""
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        buffer = bytearray()
        while self._file_answers(buffer):
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
        with self._lock:
            self._alive = False
            self._hand_back()

    def _file_answers(self, buffer: bytearray) -> bool:
        """False on an answer to nothing: it is not a helper to listen to any more."""
        while (payload := _take_payload(buffer)) is not None:
            with self._lock:
                if not self._sent:
                    return False
                sent = self._sent.popleft()
                if sent.wanted:
                    self._ready[sent.key] = payload
                self._lock.notify_all()
        return True

    def _hand_back(self) -> None:
        """Under the lock, once it has gone: every directory it was given is answered None."""
        while self._sent:
            sent = self._sent.popleft()
            if sent.wanted:
                self._ready[sent.key] = None
        self._lock.notify_all()


class SharedHelper:
    """The one helper of a round of start-up scans: started when a walk first finds it worth it (or
    the scanner, for the folders waiting their turn), used by every walk of the round, closed at its end.
    """

    def __init__(self, start: Callable[[], WalkHelper | None]) -> None:
        self._start = start
        self._helper: WalkHelper | None = None
        self._tried = False

    @property
    def running(self) -> WalkHelper | None:
        return self._helper

    def start(self) -> WalkHelper | None:
        """The helper, started if it was not yet; None when it cannot be (tried once a round)."""
        if not self._tried:
            self._tried = True
            self._helper = self._start()
        return self._helper

    def close(self) -> None:
        """The round is over: the helper ends, and the next round may start another."""
        if self._helper is not None:
            self._helper.close()
        self._helper = None
        self._tried = False


def _frame(value: object) -> bytes:
    payload = marshal.dumps(value)  # type: ignore[arg-type]  # tuples, lists and str only
    return len(payload).to_bytes(_LENGTH, "big") + payload


def _take_payload(buffer: bytearray) -> bytes | None:
    """The first whole frame's payload, taken out of `buffer`; None while it has not all come."""
    if len(buffer) < _LENGTH:
        return None
    end = _LENGTH + int.from_bytes(buffer[:_LENGTH], "big")
    if len(buffer) < end:
        return None
    payload = bytes(buffer[_LENGTH:end])
    del buffer[:end]
    return payload


def _loads(payload: bytes) -> object:
    try:
        return marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None


def _checked(frame: object) -> Checked | None:
    """An answer in its expected shape, else None (the directory is checked by the agent)."""
    if not (isinstance(frame, tuple) and len(frame) == 2):
        return None
    vouched, vanished = frame
    if not (isinstance(vouched, list) and isinstance(vanished, list)):
        return None
    if not all(isinstance(name, str) for name in vouched) or not all(isinstance(n, str) for n in vanished):
        return None
    return set(vouched), vanished


# ---- the helper's end -----------------------------------------------------------------------------


def serve() -> None:
    """The helper process: answer directories until the agent closes the pipe."""
    buffer = bytearray()

    def frames() -> Iterator[object]:
        while True:
            payload = _take_payload(buffer)
            while payload is None:
                data = os.read(0, 1 << 16)
                if not data:
                    return
                buffer.extend(data)
                payload = _take_payload(buffer)
            yield _loads(payload)

    incoming = frames()
    index_file = next(incoming, None)
    if not isinstance(index_file, str):
        return
    db = open_read_only(Path(index_file))  # None: it cannot be read now; the agent checks everything
    for request in incoming:
        answer = None
        if db is not None and isinstance(request, tuple) and len(request) == 3:
            root, account, folder = request
            if isinstance(root, str) and isinstance(account, str) and isinstance(folder, str):
                answer = _check(db, root, account, folder)
        write_all(1, _frame(answer))


def _check(
    db: sqlite3.Connection, root: str, account: str, folder: str
) -> tuple[list[str], list[str]] | None:
    try:
        dir_fd = open_directory(root, folder)
    except OSError:
        return None  # the agent looks itself, and says what is wrong
    try:
        names = set(os.listdir(dir_fd))
        vouched, vanished = check_directory(dir_fd, names, known_rows(db, folder.rstrip("/") or "/"), account)
        return list(vouched), vanished
    except Exception:  # whatever it is, the agent checks this directory itself
        return None
    finally:
        os.close(dir_fd)
