"""The index read by another process (`status`, the start-up helper) beside the agent that writes it,
without writing anything: no lock taken, no file created."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from watcher.state.index import BUSY_TIMEOUT_MS, SCHEMA_VERSION, DoneRow, known_rows


def open_read_only(file: Path, owner: str | None = None) -> sqlite3.Connection | None:
    """A connection that can only read the index, or None when it cannot be read without creating a
    file beside it.

    For the start-up helper and for `status`, which may run as root beside the service's state folder:
    a reader of a WAL database needs its -shm file, and would create one (root's) if it were missing.
    While an agent has the index open, both -wal and -shm exist and it is read beside the writer; once
    the last connection closed cleanly, neither exists, the file holds everything, and it is opened as
    immutable (no lock, nothing created). Anything else (a crash's leftover -wal alone) is not used:
    the sidecars are read instead.
    """
    wal, shm = Path(f"{file}-wal").exists(), Path(f"{file}-shm").exists()
    if wal != shm or not file.is_file():
        return None
    query = "mode=ro" if wal else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{file.absolute().as_uri()}?{query}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error:
        return None
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError("another schema")
        db.execute("SELECT count(*) FROM dirs").fetchone()
        if owner is not None:
            row = db.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()
            if row is None or row[0] != owner:
                raise sqlite3.DatabaseError("made for another API user or base URL")
    except sqlite3.Error:
        db.close()
        return None
    return db


class IndexReader:
    """`known_in` from an index opened read-only (`open_read_only`); a failed read knows nothing, so the
    walk reads those sidecars instead."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @classmethod
    def open(cls, file: Path, owner: str | None = None) -> IndexReader | None:
        """With `owner` (`ApiOwner.key`), only an index made for that owner is used."""
        db = open_read_only(file, owner)
        return cls(db) if db is not None else None

    def known_in(self, directory: str) -> dict[str, DoneRow]:
        try:
            return known_rows(self._db, directory)
        except (sqlite3.Error, UnicodeEncodeError):
            return {}

    def close(self) -> None:
        self._db.close()
