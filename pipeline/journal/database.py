"""The journal's SQLite connection: one per process, shared by worker threads under a lock.

WAL mode lets several processes on one machine share the file; ``synchronous=NORMAL`` keeps
every commit safe against a killed process (what the crash tests exercise) without an fsync
per commit. Every statement runs under the lock; an SQLite error (a full disk, an I/O error, a
lock held past the timeout) becomes a StorageError, never an unexpected exception. SQLite's
messages quote no data.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Iterable

from pipeline.errors import StorageError
from pipeline.journal.schema import SCHEMA, add_missing_columns

BUSY_SECONDS = 30.0      # how long a statement (and opening) waits for another process's lock


def _open(path: str) -> sqlite3.Connection:
    """A connection with WAL and the schema in place. Setting up can meet another process's
    lock that SQLite reports at once, without waiting (switching to WAL, a schema read while
    the other process writes): several services starting together on one state folder would
    then fail. So the set-up is tried again, for as long as a statement would wait."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            add_missing_columns(db)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            busy = (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
        except BaseException:
            db.close()
            raise


class Database:
    """The SQLite file at ``path`` (created with its folder if missing), schema applied."""

    def __init__(self, path: str, clock=time.time):
        self.path, self.clock = path, clock
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.db = _open(path)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the journal ({exc})", path) from None
        self.db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # Several statements share one transaction: each transaction costs a round of file locks
    # and WAL writes (the journal was the largest cost per file after HTTP).
    def _write(self, sql: str, args: Iterable = ()) -> None:
        self._in_tx(lambda db: db.execute(sql, tuple(args)), "")

    def _tx(self, statements: list[tuple[str, tuple]]) -> None:
        def run(db):
            for sql, args in statements:
                db.execute(sql, args)
        # one statement is atomic by itself: no BEGIN and COMMIT round trips for it
        self._in_tx(run, "BEGIN IMMEDIATE" if len(statements) > 1 else "")

    def _in_tx(self, work, begin: str = "BEGIN IMMEDIATE"):
        """``work(db)`` in one transaction (``begin`` "" = the statement's own autocommit);
        all or nothing. Returns what ``work`` returns."""
        with self._lock:
            try:
                if not begin:
                    return work(self.db)
                self.db.execute(begin)
                try:
                    result = work(self.db)
                    self.db.execute("COMMIT")
                    return result
                except BaseException:
                    # SQLite has already rolled back after some errors (a full disk at COMMIT);
                    # the original error is the one to report
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"journal: {exc}", self.path) from None

    def _query(self, sql: str, args: Iterable = ()) -> list[sqlite3.Row]:
        return self._in_tx(lambda db: db.execute(sql, tuple(args)).fetchall(), "")

    # -- companion tables (the delivery ledger keeps its own tables in this database) ---------
    def ensure_schema(self, script: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements for a companion table."""
        self._in_tx(lambda db: db.executescript(script), "")

    def query(self, sql: str, args: Iterable = ()) -> list[dict]:
        return [dict(r) for r in self._query(sql, args)]

    def transaction(self, statements: list[tuple[str, tuple]]) -> None:
        """Run ``statements`` in one immediate transaction (all or nothing)."""
        self._tx(statements)
