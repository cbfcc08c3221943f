"""The start-up helper: a child process that checks directories against the index on the second core.

A start with a long history spends nearly all its time proving that done files are still done: two
stats per file, compared with the index's row (`watcher.vouching`). Those calls are cheap one by one,
but a million of them are seconds of CPU, and threads cannot share that work: each stat hands the GIL
over twice. So a start-up scan of a folder with several subfolders starts one helper process and gives
it every other directory. The helper lists the directory, reads its rows from the index (read-only:
SQLite's WAL lets it read beside the agent) and answers with the names the index vouches for and the
known names no longer there. The agent then lists that directory itself and handles everything else in
it as usual: only the two stats of the vouched files and the index query are done elsewhere.

Nothing the helper says can make a file done that is not: it answers from the same rule on the same
disk, and whatever it does not vouch for is looked at by the agent. If it cannot start, dies or answers
nonsense, the agent checks those directories itself. It opens directories from the watched folder
without following a symlink, as the agent does (`watcher.files.open_directory`), runs isolated from
the environment (no token, no PYTHONPATH), writes nothing, and lives as long as one walk.

Messages are marshal'd values, each prefixed with its length: the agent sends the index file, the
watched folder and its account, then one directory per message; the helper answers each directory in
order with `(vouched names, vanished names)`, or None when it could not look.
"""

from __future__ import annotations

import logging
import marshal
import os
import select
import sqlite3
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import watcher
from watcher.files import open_directory, write_all
from watcher.history import known_rows, open_read_only
from watcher.vouching import check_directory

log = logging.getLogger(__name__)

# What the helper has been given and not yet answered: enough to keep it busy while the agent handles
# an answer, few enough that its answers never fill the pipe for long.
IN_FLIGHT = 3
_LENGTH = 4
# The child imports only what it needs, from the package this process runs, whatever the environment.
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); from watcher.walk_helper import serve; serve()"
_LOCALE = ("LANG", "LC_ALL", "LC_CTYPE")  # names are decoded the same way on both sides

Checked = tuple[set[str], list[str]]  # (vouched names, known names no longer listed)


class WalkHelper:
    """The agent's end: directories go out with `send`, answers come back with `answers`."""

    def __init__(self, process: subprocess.Popen[bytes], root: str) -> None:
        self._process = process
        self._root = root
        self.answered = 0  # directories it checked (not those handed back)
        self._in_flight: deque[str] = deque()
        self._buffer = bytearray()
        self._alive = True

    @classmethod
    def start(cls, index_file: Path, root: str, account: str) -> WalkHelper | None:
        """A running helper for the watched folder `root`, or None when none can be started."""
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
            log.info("cannot start the start-up helper (%s); this scan runs in one process", exc.strerror)
            return None
        helper = cls(process, root)
        helper._write((str(index_file), root, account))
        return helper

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def send(self, folder: str) -> None:
        self._in_flight.append(folder)
        self._write(folder)

    def answers(self, *, wait: bool) -> Iterator[tuple[str, Checked | None]]:
        """The directories answered so far (with `wait`, at least one while any is out). A directory
        answered None, or left unanswered by a helper that died, is the caller's to check itself."""
        while self._in_flight:
            frame = _take_frame(self._buffer)
            if frame is _NOTHING_YET:
                if self._fill(block=wait):
                    continue
                if self._alive:
                    return  # nothing more yet, and not asked to wait
                while self._in_flight:  # it has gone: what it was given is the caller's again
                    yield self._in_flight.popleft(), None
                return
            wait = False
            checked = _checked(frame)
            self.answered += checked is not None
            yield self._in_flight.popleft(), checked

    def close(self) -> None:
        log.debug("%s: the start-up helper checked %d directories", self._root, self.answered)
        self._alive = False
        process = self._process
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()

    # ---- the pipe --------------------------------------------------------------------------------

    def _write(self, value: object) -> None:
        if not self._alive or self._process.stdin is None:
            return
        try:
            self._process.stdin.write(_frame(value))
            self._process.stdin.flush()
        except OSError:  # it died: what it was given is answered None
            self._alive = False

    def _fill(self, *, block: bool) -> bool:
        """Read what the helper has written; False when it has gone (or, without `block`, said nothing)."""
        if not self._alive or self._process.stdout is None:
            return False
        fd = self._process.stdout.fileno()
        if not block and not select.select([fd], [], [], 0)[0]:
            return False
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self._alive = False
            return False
        self._buffer += data
        return True


class _NothingYet:
    pass


_NOTHING_YET = _NothingYet()


def _frame(value: object) -> bytes:
    payload = marshal.dumps(value)  # type: ignore[arg-type]  # tuples, lists and str only
    return len(payload).to_bytes(_LENGTH, "big") + payload


def _take_frame(buffer: bytearray) -> object:
    if len(buffer) < _LENGTH:
        return _NOTHING_YET
    end = _LENGTH + int.from_bytes(buffer[:_LENGTH], "big")
    if len(buffer) < end:
        return _NOTHING_YET
    payload = bytes(buffer[_LENGTH:end])
    del buffer[:end]
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
            frame = _take_frame(buffer)
            while frame is _NOTHING_YET:
                data = os.read(0, 1 << 16)
                if not data:
                    return
                buffer.extend(data)
                frame = _take_frame(buffer)
            yield frame

    incoming = frames()
    setup = next(incoming, None)
    if not (isinstance(setup, tuple) and len(setup) == 3):
        return
    index_file, root, account = setup
    db = open_read_only(Path(index_file))  # None: it cannot be read now; the agent checks everything
    for folder in incoming:
        answer = _check(db, root, account, folder) if isinstance(folder, str) and db else None
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
