"""The index in the state folder: which files are done, and which bytes each account already has.

A cache of the sidecars in SQLite, which stay the truth: a row vouches only for the very file and sidecar
it was made from, and a missing or damaged index is rebuilt from the sidecars. See docs/architecture.md,
'Finding files and knowing them'.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from watcher.core.dedupe import KnownUpload
from watcher.core.signature import FileSignature, RecordId

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
SCHEMA_VERSION = 2  # 2: the file's change time in `done`, the owner in `meta`
COMMIT_SECONDS = 0.2
BUSY_TIMEOUT_MS = 5000  # a `scan` next to the service shares the file: wait for its commit

SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS done (
    dir INTEGER NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
    account TEXT NOT NULL, record_ino INTEGER NOT NULL, record_ctime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    PRIMARY KEY (dir, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    account TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    file_id TEXT NOT NULL, oss_path TEXT NOT NULL, head TEXT,
    PRIMARY KEY (account, size, sha256)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_head ON uploads (account, size, head);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
# Version 1 rows name neither the file's change time nor whose fileIDs they are: they count for nothing.
DROP_VERSION_1 = "DROP TABLE IF EXISTS done; DROP TABLE IF EXISTS uploads; DROP TABLE IF EXISTS dirs;"

# Two lookups on uploads_by_head, not one with `head = ? OR head IS NULL`: SQLite answers that form by
# reading every upload of the same size, so a burst of same-size files (a render's frames) cost time
# in proportion to the history (2,000 such uploads: 0.2 ms per file; a million: seconds).
MAY_HOLD_SQL = (
    "SELECT 1 FROM uploads WHERE account = ?1 AND size = ?2 AND head = ?3 "
    "UNION ALL SELECT 1 FROM uploads WHERE account = ?1 AND size = ?2 AND head IS NULL LIMIT 1"
)

T = TypeVar("T")


# A done file as `known_in` gives it: (size, mtime_ns, ino, account, record ino, record ctime_ns,
# ctime_ns). Plain tuples: a start compares a million of them with the `stat` of the file.
DoneRow = tuple[int, int, int, str, int, int, int]


@dataclass(frozen=True, slots=True)
class KnownDone:
    """A done file as the index remembers it, with the inode of the sidecar it was read from."""

    signature: FileSignature
    account: str
    record_id: RecordId


class HistoryIndex:
    """Done files by directory, and known uploads by account, size and sha256 (content dedupe).

    `HistoryIndex(None)` keeps everything in memory (`scan` without a state folder, unit tests).
    """

    def __init__(self, state_dir: Path | None, owner: str = "") -> None:
        self._file = state_dir / INDEX_NAME if state_dir is not None else None
        self._lock = threading.RLock()
        self._dirty = threading.Condition(self._lock)
        self._dir_ids: dict[str, int] = {}
        self._closed = False
        self._owner = owner
        self._db = self._open()
        self._committer: threading.Thread | None = None

    @property
    def file(self) -> Path | None:
        """The SQLite file, or None when the index is kept in memory."""
        return self._file

    # ---- opening, and starting afresh ------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            try:
                return self._connect()
            except sqlite3.DatabaseError as exc:
                self._discard_file(exc)
                return self._connect()
        except (sqlite3.Error, OSError) as exc:
            # The state folder cannot be written (another user's, read-only): every start reads the
            # sidecars, as it did before there was an index.
            why = getattr(exc, "strerror", None) or exc
            log.warning("cannot use the index %s (%s); keeping it in memory for this run", self._file, why)
            self._file = None
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        target = str(self._file) if self._file is not None else ":memory:"
        if self._file is not None:
            # Created private: it names every uploaded file.
            fd = os.open(self._file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.close(fd)
        db = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a cache: consistent after a crash is enough
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
            if version == 1:
                log.info("the index %s is of an earlier version: it is rebuilt from the sidecars", self._file)
                db.executescript(DROP_VERSION_1)
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM dirs").fetchone()  # reads a page: a damaged file fails here
            self._claim(db)
        except BaseException:
            db.close()
            raise
        return db

    def _claim(self, db: sqlite3.Connection) -> None:
        """Make the index this owner's: another owner's rows (another user, another base URL) vouch
        for nothing here and lend no fileID, so they go (the sidecars say what is done for whom)."""
        row = db.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
        if row is not None and row[0] == self._owner:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            if row is not None and db.execute("SELECT 1 FROM done LIMIT 1").fetchone() is not None:
                log.info(
                    "the index %s was made for another API user or base URL: its rows count for nothing; "
                    "the sidecars are read again, and files uploaded for the other are uploaded for this one",
                    self._file,
                )
            for table in ("done", "uploads", "dirs"):
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('owner', ?)", (self._owner,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _discard_file(self, exc: BaseException) -> None:
        if self._file is None:
            return
        log.warning(
            "the index %s cannot be used (%s); starting it afresh: the sidecars are read again to rebuild "
            "it, nothing is uploaded again",
            self._file,
            exc,
        )
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self._file}{suffix}")

    def _recover(self, exc: sqlite3.Error) -> None:
        """A damaged file found while in use: start afresh (what it held is re-read from the sidecars)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._dir_ids.clear()
        self._discard_file(exc)
        self._db = self._open()

    def _guarded(self, operation: Callable[[], T], fallback: T, *, write: bool = False) -> T:
        with self._lock:
            if self._closed:
                return fallback
            try:
                if write and not self._db.in_transaction:
                    self._db.execute("BEGIN")
                    self._dirty.notify()
                return operation()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    log.warning("the index is busy (%s); this change is read again from the sidecars", exc)
                    return fallback
                self._recover(exc)
                return fallback
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return fallback
            except UnicodeEncodeError:
                # A name that is not UTF-8 (surrogate-escaped by Python) is not indexed: its sidecar
                # is read at each start instead, as before there was an index.
                return fallback

    # ---- committing ------------------------------------------------------------------------------

    def start(self) -> None:
        """Commit in the background from now on (without it, only `close` does)."""
        self._committer = threading.Thread(target=self._commit_loop, name="index", daemon=True)
        self._committer.start()

    def _commit_loop(self) -> None:
        with self._lock:
            while not self._closed:
                if not self._db.in_transaction:
                    self._dirty.wait()  # idle: no wakeups until something is written
                    continue
                self._dirty.wait(COMMIT_SECONDS)
                self._commit_locked()

    def _commit_locked(self) -> None:
        if self._closed or not self._db.in_transaction:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            log.warning(
                "cannot commit to the index (%s); those changes are read again from the sidecars", exc
            )
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            self._recover(exc)

    def close(self) -> None:
        with self._lock:
            self._commit_locked()
            self._closed = True
            self._dirty.notify_all()
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    # ---- done files ------------------------------------------------------------------------------

    def _dir_id(self, directory: str, *, create: bool) -> int | None:
        known = self._dir_ids.get(directory)
        if known is not None:
            return known
        row = self._db.execute("SELECT id FROM dirs WHERE path = ?", (directory,)).fetchone()
        if row is None:
            if not create:
                return None
            row = (self._db.execute("INSERT INTO dirs (path) VALUES (?)", (directory,)).lastrowid,)
        if len(self._dir_ids) > 10_000:
            self._dir_ids.clear()  # a cache of ids, not of history
        self._dir_ids[directory] = row[0]
        return int(row[0])

    def get(self, path: str) -> FileSignature | None:
        known = self.lookup(path)
        return known.signature if known is not None else None

    def lookup(self, path: str) -> KnownDone | None:
        directory, name = os.path.split(path)

        def query() -> KnownDone | None:
            dir_id = self._dir_id(directory, create=False)
            if dir_id is None:
                return None
            row = self._db.execute(
                "SELECT size, mtime_ns, ino, account, record_ino, record_ctime_ns, ctime_ns FROM done "
                "WHERE dir = ? AND name = ?",
                (dir_id, name),
            ).fetchone()
            return (
                None
                if row is None
                else KnownDone(FileSignature(row[0], row[1], row[2], row[6]), row[3], (row[4], row[5]))
            )

        return self._guarded(query, None)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.lookup(path) is not None

    def may_know(self, path: str) -> bool:
        """Whether `path` may be a done file: it is known, or its name cannot be stored (the caller looks)."""
        return (not path.isascii() and not _storable(path)) or path in self

    def known_in(self, directory: str) -> dict[str, DoneRow]:
        """Every done file of one directory (one query: a rescan asks once per directory)."""
        return self._guarded(lambda: known_rows(self._db, directory), {})

    def holds_at_least(self, count: int) -> bool:
        """Whether it knows `count` done files or more (reads at most that many rows, not the table)."""
        query = "SELECT count(*) FROM (SELECT 1 FROM done LIMIT ?)"
        return self._guarded(lambda: bool(self._db.execute(query, (count,)).fetchone()[0] >= count), False)

    def put(self, path: str, signature: FileSignature, account: str, record_id: RecordId) -> None:
        directory, name = os.path.split(path)

        def write() -> None:
            dir_id = self._dir_id(directory, create=True)
            self._db.execute(
                "INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dir_id,
                    name,
                    signature.size,
                    signature.mtime_ns,
                    signature.ino,
                    account,
                    *record_id,
                    signature.ctime_ns,
                ),
            )

        self._guarded(write, None, write=True)

    def pop(self, path: str) -> bool:
        """Forget one file; whether it was known."""
        if not path.isascii() and not _storable(path):
            return True  # never indexed: it may be known all the same, the caller looks again
        directory, name = os.path.split(path)
        return self.forget(directory, [name]) > 0

    def forget(self, directory: str, names: Iterable[str]) -> int:
        """Forget these files of `directory`; how many were known."""

        def write() -> int:
            dir_id = self._dir_id(directory, create=False)
            if dir_id is None:
                return 0
            cursor = self._db.executemany(
                "DELETE FROM done WHERE dir = ? AND name = ?", ((dir_id, name) for name in names)
            )
            return cursor.rowcount

        return self._guarded(write, 0, write=True)

    def forget_under(self, root: str, *, except_dirs: Collection[str] = ()) -> None:
        """Forget every file in `root` and below, except in the directories of `except_dirs`."""
        prefix = root.rstrip("/") + "/"
        # Every path that starts with "<root>/" sorts between it and "<root>0" ("0" follows "/"): a
        # range on the unique index, exact and case-sensitive where LIKE would be neither.
        below = (prefix, prefix[:-1] + "0")

        def write() -> None:
            rows = self._db.execute(
                "SELECT id, path FROM dirs WHERE path = ? OR (path >= ? AND path < ?)", (root, *below)
            ).fetchall()
            gone = [(dir_id, path) for dir_id, path in rows if path not in except_dirs]
            self._db.executemany("DELETE FROM done WHERE dir = ?", ((dir_id,) for dir_id, _ in gone))
            self._db.executemany("DELETE FROM dirs WHERE id = ?", ((dir_id,) for dir_id, _ in gone))
            for _, path in gone:
                self._dir_ids.pop(path, None)

        self._guarded(write, None, write=True)

    def __len__(self) -> int:
        return self._guarded(lambda: int(self._db.execute("SELECT count(*) FROM done").fetchone()[0]), 0)

    def count_in(self, folder: str, recursive: bool) -> int:
        """How many done files `folder` holds (and its subfolders', when `recursive`)."""
        prefix = folder.rstrip("/") + "/"
        below = (prefix, prefix[:-1] + "0") if recursive else ("", "")  # as in forget_under

        def query() -> int:
            row = self._db.execute(
                "SELECT count(*) FROM done JOIN dirs ON done.dir = dirs.id "
                "WHERE dirs.path = ? OR (dirs.path >= ? AND dirs.path < ?)",
                (folder, *below),
            ).fetchone()
            return int(row[0])

        return self._guarded(query, 0)

    # ---- known uploads (content dedupe, see watcher.core.dedupe) --------------------------------------

    def add(self, account: str, size: int, sha256: str, upload: KnownUpload, head: str | None = None) -> None:
        def write() -> None:
            self._db.execute(
                "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, "
                "coalesce(?, (SELECT head FROM uploads WHERE account = ? AND size = ? AND sha256 = ?)))",
                (account, size, sha256, upload.file_id, upload.oss_path, head, account, size, sha256),
            )

        self._guarded(write, None, write=True)

    def may_hold(self, account: str, size: int, head: str) -> bool:
        """Whether a file of this size and head could be a known upload (then hash it in full)."""
        return self._guarded(
            lambda: self._db.execute(MAY_HOLD_SQL, (account, size, head)).fetchone() is not None, False
        )

    def find(self, account: str, size: int, sha256: str) -> KnownUpload | None:
        def query() -> KnownUpload | None:
            row = self._db.execute(
                "SELECT file_id, oss_path FROM uploads WHERE account = ? AND size = ? AND sha256 = ?",
                (account, size, sha256),
            ).fetchone()
            return None if row is None else KnownUpload(row[0], row[1])

        return self._guarded(query, None)


def known_rows(db: sqlite3.Connection, directory: str) -> dict[str, DoneRow]:
    """Every done file of one directory, from a connection to the index (`HistoryIndex.known_in`, and
    the start-up helper's read-only connection: `watcher.scan.helper`)."""
    rows = db.execute(
        "SELECT name, size, mtime_ns, ino, account, record_ino, record_ctime_ns, ctime_ns FROM done "
        "WHERE dir = (SELECT id FROM dirs WHERE path = ?)",
        (directory,),
    )
    return {r[0]: r[1:] for r in rows}


def _storable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
