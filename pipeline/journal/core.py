"""The journal: an SQLite record of every claim, attempt and answer.

It is what makes a restart safe: Redox's Log IDs are committed here *before* a file is moved to
done/, so recovery never re-sends a file Redox already accepted, and attempts and the next
retry time survive restarts (a crash loop cannot become a retry storm). WAL mode lets several
processes on one machine share it; ``synchronous=NORMAL`` keeps every commit safe against a
killed process (what the crash tests exercise) without an fsync per commit.

One connection per process, guarded by a lock so worker threads can share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Optional

from pipeline.errors import StorageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    claim_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT,
    location TEXT,
    owner TEXT,
    sha256 TEXT,
    size INTEGER,
    data_model TEXT,
    event_type TEXT,
    state TEXT NOT NULL,             -- claimed | waiting | released | accepted | finishing | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at REAL,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    logs TEXT NOT NULL DEFAULT '[]',
    errors TEXT NOT NULL DEFAULT '[]',
    uploads TEXT NOT NULL DEFAULT '[]',
    outcome TEXT,                    -- done | failed, once decided
    reason_kind TEXT,
    duplicate_of TEXT,
    dest TEXT,
    dropped_at REAL,
    first_claimed_at REAL,
    finished_at REAL
);
-- look-ups by bytes (dedupe) and by inbox name; without ``state``, which changes at every step,
-- so a step rewrites one index fewer (these replace the first version's (sha256, state) and
-- (name, state) indexes, dropped here)
DROP INDEX IF EXISTS claims_by_sha;
DROP INDEX IF EXISTS claims_by_name;
CREATE INDEX IF NOT EXISTS claims_by_sha256 ON claims (sha256);
CREATE INDEX IF NOT EXISTS claims_by_inbox_name ON claims (name);
CREATE INDEX IF NOT EXISTS claims_by_state ON claims (state, next_retry_at);
CREATE TABLE IF NOT EXISTS attempts (
    claim_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- send | upload
    n INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    status INTEGER,
    result TEXT,                     -- accepted | transient | permanent | auth | interrupted (NULL: in flight)
    maybe_seen INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (claim_id, kind, n)
);
-- retry-failed: the sidecar of a failed file put back into the inbox, until the file's next
-- outcome takes it into its own sidecar as ``history`` (keyed by the inbox name it was put
-- back under and its bytes, which is exactly what the next claim of it will see)
CREATE TABLE IF NOT EXISTS replays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    requeued_at REAL NOT NULL,
    history TEXT NOT NULL,           -- JSON list: earlier sidecars, oldest first
    consumed_by TEXT                 -- the claim whose sidecar took them in
);
CREATE INDEX IF NOT EXISTS replays_by_file ON replays (name, sha256);
"""

OPEN_STATES = ("claimed", "waiting", "released", "accepted", "finishing")


@dataclass
class Record:
    """One claim's journal row, as the runner needs it."""
    claim_id: str
    name: str
    state: str
    attempts: int
    possible_duplicate: bool
    logs: list
    errors: list
    uploads: list
    http_status: Optional[int]
    outcome: Optional[str]
    reason_kind: Optional[str]
    next_retry_at: Optional[float]
    dest: Optional[str]
    sha256: Optional[str]
    duplicate_of: Optional[str] = None


@dataclass(frozen=True)
class SidecarView:
    """What a finished file's sidecar is built from, read in one transaction."""
    record: Record
    attempts: list
    replay_ids: list
    history: list


class Journal:
    """The journal at ``path`` (created with its folder if missing)."""

    def __init__(self, path: str, clock=time.time):
        self.path, self.clock = path, clock
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the journal ({exc})", path) from None
        self.db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # Every statement runs under the lock; an SQLite error (a full disk, an I/O error) becomes a
    # StorageError (the file stays claimed and is tried again), never an unexpected exception.
    # SQLite's messages quote no data. Several statements share one transaction: each
    # transaction costs a round of file locks and WAL writes (the journal was the
    # largest cost per file after HTTP).
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

    # -- claims ------------------------------------------------------------------------------
    def begin(self, name: str, sha256: str, size: int, source: str, location: str, owner: str,
              dropped_at: float) -> Record:
        """The record for a freshly claimed file: an open one for the same name and bytes
        (released for a later retry, or abandoned by a dead process) is continued, so its
        attempts and history are kept; otherwise a new one is started."""
        claim_id, now = uuid.uuid4().hex, self.clock()

        def start(db):
            row = db.execute(
                "SELECT * FROM claims WHERE name = ? AND sha256 = ? AND state IN (?,?,?,?,?) "
                "ORDER BY CASE state WHEN 'finishing' THEN 0 WHEN 'accepted' THEN 1 ELSE 2 END, "
                "first_claimed_at LIMIT 1", (name, sha256, *OPEN_STATES)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO claims (claim_id, name, source, location, owner, sha256, size, "
                    "state, dropped_at, first_claimed_at) VALUES (?,?,?,?,?,?,?, 'claimed', ?, ?)",
                    (claim_id, name, source, location, owner, sha256, size, dropped_at, now))
            return row

        row = self._in_tx(start)
        if row is None:
            return Record(claim_id=claim_id, name=name, state="claimed", attempts=0,
                          possible_duplicate=False, logs=[], errors=[], uploads=[], http_status=None,
                          outcome=None, reason_kind=None, next_retry_at=None, dest=None, sha256=sha256)
        state = row["state"] if row["state"] in ("accepted", "finishing") else "claimed"
        self._write("UPDATE claims SET location = ?, owner = ?, state = ? WHERE claim_id = ?",
                    (location, owner, state, row["claim_id"]))
        self.close_interrupted(row["claim_id"])
        return self.get(row["claim_id"])

    def get(self, claim_id: str) -> Record:
        row = self._query("SELECT * FROM claims WHERE claim_id = ?", (claim_id,))[0]
        return _record(row)

    def close_interrupted(self, claim_id: str) -> None:
        """Attempts started but never ended belong to a process that died mid-request:
        Redox may have received them. Only an interrupted
        SEND makes the file a possible duplicate; an interrupted upload at worst left an
        unused copy of a document with Redox."""
        def close(db):
            sends = db.execute(
                "SELECT COUNT(*) FROM attempts WHERE claim_id = ? AND kind = 'send' AND "
                "result IS NULL", (claim_id,)).fetchone()[0]
            db.execute(
                "UPDATE attempts SET ended_at = ?, result = 'interrupted', maybe_seen = 1 "
                "WHERE claim_id = ? AND result IS NULL", (self.clock(), claim_id))
            if sends:
                db.execute("UPDATE claims SET possible_duplicate = 1 WHERE claim_id = ?", (claim_id,))
        self._in_tx(close)

    # -- attempts ----------------------------------------------------------------------------
    def attempt_started(self, claim_id: str, kind: str, n: int,
                        described: Optional[tuple[str, str]] = None) -> None:
        """Committed before the request goes out, so a crash mid-request is visible later.
        ``described``: the message's (data model, event type), recorded in the same commit."""
        fields, args = "", ()
        if kind == "send":
            fields, args = "attempts = ?, ", (n,)
        if described:
            fields, args = fields + "data_model = ?, event_type = ?, ", args + tuple(described)
        self._tx([
            ("INSERT OR REPLACE INTO attempts (claim_id, kind, n, started_at) VALUES (?,?,?,?)",
             (claim_id, kind, n, self.clock())),
            (f"UPDATE claims SET {fields}state = 'claimed', next_retry_at = NULL WHERE claim_id = ?",
             (*args, claim_id)),
        ])

    def attempt_ended(self, claim_id: str, kind: str, n: int, *, result: str,
                      status: Optional[int], maybe_seen: bool, error: Optional[str] = None,
                      logs: Optional[list] = None, sidecar_for: Optional[str] = None) -> Optional[SidecarView]:
        """Record the answer; for an accepted SEND the Log IDs go in the same transaction.
        ``sidecar_for`` (the file's name): also read back, in that transaction, what its
        sidecar is built from (:meth:`for_sidecar`), which is returned."""
        statements = [(
            "UPDATE attempts SET ended_at = ?, status = ?, result = ?, maybe_seen = ?, error = ? "
            "WHERE claim_id = ? AND kind = ? AND n = ?",
            (self.clock(), status, result, int(maybe_seen), error, claim_id, kind, n))]
        fields, args = [], []
        if kind == "send":
            fields += ["http_status = ?", "possible_duplicate = MAX(possible_duplicate, ?)"]
            args += [status, int(maybe_seen)]
        if logs is not None:
            fields += ["state = 'accepted'", "logs = ?"]
            args.append(json.dumps(logs))
        if fields:
            statements.append((f"UPDATE claims SET {', '.join(fields)} WHERE claim_id = ?",
                               (*args, claim_id)))

        def run(db):
            for sql, values in statements:
                db.execute(sql, values)
            return _sidecar_view(db, claim_id, sidecar_for) if sidecar_for is not None else None
        return self._in_tx(run)

    def void_attempt(self, claim_id: str, kind: str, n: int) -> None:
        """Forget an attempt that failed on the credentials, not on the file: it is not one of
        the file's attempts (the sidecar's ``attempts`` counts requests Redox judged)."""
        statements = [("DELETE FROM attempts WHERE claim_id = ? AND kind = ? AND n = ?", (claim_id, kind, n))]
        if kind == "send":
            statements.append(("UPDATE claims SET attempts = ? WHERE claim_id = ?", (n - 1, claim_id)))
        self._tx(statements)

    def schedule(self, claim_id: str, next_retry_at: float, state: str = "waiting") -> None:
        """A retry is due at ``next_retry_at`` (epoch seconds); ``released`` = back in the inbox."""
        # An accepted or half-finished outcome keeps its state: it must never be sent again.
        self._write("UPDATE claims SET state = CASE WHEN state IN ('accepted', 'finishing') "
                    "THEN state ELSE ? END, next_retry_at = ? WHERE claim_id = ?",
                    (state, next_retry_at, claim_id))

    def released(self, claim_id: str, now: float) -> None:
        """The file went back to the inbox: its next retry stays when it was (at least now)."""
        self._write("UPDATE claims SET state = CASE WHEN state IN ('accepted', 'finishing') "
                    "THEN state ELSE 'released' END, next_retry_at = "
                    "MAX(COALESCE(next_retry_at, 0), ?) WHERE claim_id = ?", (now, claim_id))

    def save_uploads(self, claim_id: str, uploads: list[dict]) -> None:
        """The file's uploaded documents so far (URI, field, size, sha256), in the order their
        fields are replaced; committed as soon as an upload returns, so neither a retry nor a
        restart after a crash uploads a document again."""
        self._write("UPDATE claims SET uploads = ? WHERE claim_id = ?", (json.dumps(uploads), claim_id))

    # -- outcome -----------------------------------------------------------------------------
    def finishing(self, claim_id: str, outcome: str, errors: list[str], reason_kind: Optional[str],
                  duplicate_of: Optional[str] = None) -> None:
        """The outcome is decided; the sidecar and the move follow (recovery redoes them)."""
        self._write("UPDATE claims SET state = 'finishing', outcome = ?, errors = ?, reason_kind = ?, "
                    "duplicate_of = ? WHERE claim_id = ?",
                    (outcome, json.dumps(errors), reason_kind, duplicate_of, claim_id))

    def finished(self, claim_id: str, dest: str, status: str, replays: Iterable[int] = ()) -> None:
        """The file reached ``dest``: the claim's outcome is ``status`` (done | failed).
        ``replays`` (``SidecarView.replay_ids``) now live in its sidecar, so they are
        marked as taken by this claim, in the same transaction."""
        statements = [("UPDATE claims SET state = ?, outcome = ?, dest = ?, finished_at = ?, "
                       "next_retry_at = NULL WHERE claim_id = ?",
                       (status, status, dest, self.clock(), claim_id))]
        statements += [("UPDATE replays SET consumed_by = ? WHERE id = ?", (claim_id, rid))
                       for rid in replays]
        self._tx(statements)

    # -- replay history (retry-failed) ---------------------------------------------------------
    def remember_replay(self, name: str, sha256: str, history: list[dict]) -> int:
        """Keep ``history`` for the file about to be put back into the inbox as ``name``."""
        return self._in_tx(lambda db: db.execute(
            "INSERT INTO replays (name, sha256, requeued_at, history) VALUES (?,?,?,?)",
            (name, sha256, self.clock(), json.dumps(history))).lastrowid, "")

    def forget_replay(self, replay_id: int) -> None:
        """The move back to the inbox did not happen after all."""
        self._write("DELETE FROM replays WHERE id = ? AND consumed_by IS NULL", (replay_id,))

    def attempts_of(self, claim_id: str) -> list[dict]:
        return self._in_tx(lambda db: _attempts(db, claim_id), "")

    def for_sidecar(self, claim_id: str, name: str) -> SidecarView:
        """What a sidecar is built from, read in one transaction: the record, its attempts,
        and the replay history of ``name`` with the record's bytes: the sidecars of earlier
        failures that retry-failed put back, waiting for this claim's outcome or taken by it
        already (a finish redone after a crash builds the same sidecar again)."""
        return self._in_tx(lambda db: _sidecar_view(db, claim_id, name), "BEGIN")

    # -- look-ups ----------------------------------------------------------------------------
    def delivered(self, sha256: str, exclude: str) -> Optional[str]:
        """Where the same bytes were delivered before (dedupe), or None. Bytes count as
        delivered as soon as Redox accepted them, even if that file's finish is still pending."""
        rows = self._query(
            "SELECT dest, name, state FROM claims WHERE sha256 = ? AND claim_id != ? AND "
            "duplicate_of IS NULL AND logs != '[]' AND (state IN ('done', 'accepted') OR "
            "(state = 'finishing' AND outcome = 'done')) "
            "ORDER BY state = 'done' DESC, finished_at LIMIT 1", (sha256, exclude))
        if not rows:
            return None
        return rows[0]["dest"] or f"{rows[0]['name']} (being finished)"

    def not_due(self, now: float) -> dict[str, float]:
        """Inbox names released for a retry that is not due yet: name → when it is."""
        rows = self._query("SELECT name, MAX(next_retry_at) AS t FROM claims WHERE state = 'released' "
                           "AND next_retry_at > ? GROUP BY name", (now,))
        return {r["name"]: r["t"] for r in rows}

    def rows(self, where: str = "1", args: Iterable = ()) -> list[dict]:
        """Raw rows for status and reports."""
        return [dict(r) for r in self._query(f"SELECT * FROM claims WHERE {where}", args)]

    # -- companion tables (delivery_ledger.py keeps its own table in this database) ------------
    def ensure_schema(self, script: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements for a companion table."""
        self._in_tx(lambda db: db.executescript(script), "")

    def query(self, sql: str, args: Iterable = ()) -> list[dict]:
        return [dict(r) for r in self._query(sql, args)]

    def transaction(self, statements: list[tuple[str, tuple]]) -> None:
        """Run ``statements`` in one immediate transaction (all or nothing)."""
        self._tx(statements)


def _sidecar_view(db, claim_id: str, name: str) -> SidecarView:
    record = _record(db.execute("SELECT * FROM claims WHERE claim_id = ?", (claim_id,)).fetchone())
    return SidecarView(record, _attempts(db, claim_id), *_replays(db, claim_id, name, record.sha256))


def _attempts(db, claim_id: str) -> list[dict]:
    rows = db.execute("SELECT kind, n, started_at, ended_at, status, result, maybe_seen, error "
                      "FROM attempts WHERE claim_id = ? ORDER BY started_at, n", (claim_id,))
    return [dict(r) for r in rows]


def _replays(db, claim_id: str, name: str, sha256: Optional[str]) -> tuple[list[int], list[dict]]:
    rows = db.execute("SELECT id, history FROM replays WHERE name = ? AND sha256 = ? AND "
                      "(consumed_by IS NULL OR consumed_by = ?) ORDER BY id",
                      (name, sha256 or "", claim_id)).fetchall()
    return [r["id"] for r in rows], [doc for r in rows for doc in json.loads(r["history"])]


def _record(row: sqlite3.Row) -> Record:
    return Record(
        claim_id=row["claim_id"], name=row["name"], state=row["state"], attempts=row["attempts"],
        possible_duplicate=bool(row["possible_duplicate"]), logs=json.loads(row["logs"]),
        errors=json.loads(row["errors"]), uploads=json.loads(row["uploads"]),
        http_status=row["http_status"], outcome=row["outcome"], reason_kind=row["reason_kind"],
        next_retry_at=row["next_retry_at"], dest=row["dest"], sha256=row["sha256"],
        duplicate_of=row["duplicate_of"])


@contextlib.contextmanager
def read_existing(path: str):
    """For the read-only commands (status, report): ``(state, journal)`` where state is "ok",
    "missing" (no journal yet: nothing is created) or "unreadable (why)" with journal None."""
    if not os.path.exists(path):
        yield "missing", None
        return
    try:
        journal = Journal(path)
    except StorageError as exc:
        yield f"unreadable ({exc})", None
        return
    try:
        yield "ok", journal
    finally:
        journal.close()
