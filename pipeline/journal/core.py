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
import uuid
from typing import Iterable, Optional

from pipeline.errors import StorageError
from pipeline.journal.lookups import Lookups
from pipeline.journal.records import Record, SidecarView, record_of, sidecar_view
from pipeline.journal.schema import OPEN_STATES


class Journal(Lookups):
    """Every claim, attempt and answer, at ``path`` (database.py holds the connection,
    lookups.py the read-only look-ups)."""

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
        return record_of(row)

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
                        described: Optional[tuple] = None) -> None:
        """Committed before the request goes out, so a crash mid-request is visible later.
        ``described``: the message's (data model, event type) and optionally (route name,
        destinations), recorded in the same commit (a file finished after a restart without
        being read again still gets them in its sidecar).

        An earlier attempt of the same kind still open (its answer never recorded, whatever
        lost it) is closed as interrupted in the same commit, and for a SEND the file becomes
        a possible duplicate first: no SEND starts while an earlier one may have been accepted
        without the file saying so."""
        fields: str = ""
        args: tuple = ()
        if kind == "send":
            fields = ("attempts = ?, possible_duplicate = MAX(possible_duplicate, EXISTS (SELECT 1 "
                      "FROM attempts WHERE claim_id = ? AND kind = 'send' AND result IS NULL)), ")
            args = (n, claim_id)
        if described:
            data_model, event_type, *routed = described
            fields, args = fields + "data_model = ?, event_type = ?, ", args + (data_model, event_type)
            if routed:
                fields += "route = ?, destinations = ?, "
                args += (routed[0], json.dumps(list(routed[1])))
        now = self.clock()
        self._tx([
            (f"UPDATE claims SET {fields}state = 'claimed', next_retry_at = NULL WHERE claim_id = ?",
             (*args, claim_id)),
            ("UPDATE attempts SET ended_at = ?, result = 'interrupted', maybe_seen = 1 "
             "WHERE claim_id = ? AND kind = ? AND result IS NULL", (now, claim_id, kind)),
            ("INSERT OR REPLACE INTO attempts (claim_id, kind, n, started_at) VALUES (?,?,?,?)",
             (claim_id, kind, n, now)),
        ])

    def attempt_ended(self, claim_id: str, kind: str, n: int, *, result: str,
                      status: Optional[int], maybe_seen: bool, error: Optional[str] = None,
                      logs: Optional[list] = None, sidecar_for: Optional[str] = None) -> Optional[SidecarView]:
        """Record the answer; for an accepted SEND the Log IDs go in the same transaction.
        ``sidecar_for`` (the file's name): also read back, in that transaction, what its
        sidecar is built from (:meth:`for_sidecar`), which is returned."""
        statements: list[tuple[str, tuple]] = [(
            "UPDATE attempts SET ended_at = ?, status = ?, result = ?, maybe_seen = ?, error = ? "
            "WHERE claim_id = ? AND kind = ? AND n = ?",
            (self.clock(), status, result, int(maybe_seen), error, claim_id, kind, n))]
        fields: list[str] = []
        args: list = []
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
            return sidecar_view(db, claim_id, sidecar_for) if sidecar_for is not None else None
        return self._in_tx(run)

    def void_attempt(self, claim_id: str, kind: str, n: int) -> None:
        """Forget an attempt that failed on the credentials, not on the file: it is not one of
        the file's attempts (the sidecar's ``attempts`` counts requests Redox judged)."""
        statements: list[tuple[str, tuple]] = [
            ("DELETE FROM attempts WHERE claim_id = ? AND kind = ? AND n = ?", (claim_id, kind, n))]
        if kind == "send":
            statements.append(("UPDATE claims SET attempts = ? WHERE claim_id = ?", (n - 1, claim_id)))
        self._tx(statements)

    def end_open_attempts(self, claim_id: str, kind: str, *, error: str, maybe_seen: bool) -> None:
        """A request of ``kind`` ended without an answer (an unexpected exception): its attempts
        still open are ended as transient failures with ``error``; when none is open (it came
        before any request), one such attempt is recorded, so that it counts toward
        ``max_attempts`` all the same. For a SEND that may have been seen, the file becomes a
        possible duplicate."""
        now = self.clock()

        def end(db) -> None:
            ended = db.execute(
                "UPDATE attempts SET ended_at = ?, result = 'transient', maybe_seen = ?, error = ? "
                "WHERE claim_id = ? AND kind = ? AND result IS NULL",
                (now, int(maybe_seen), error, claim_id, kind)).rowcount
            if not ended:
                n = db.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE claim_id = ? "
                               "AND kind = ?", (claim_id, kind)).fetchone()[0]
                db.execute("INSERT INTO attempts (claim_id, kind, n, started_at, ended_at, result, "
                           "maybe_seen, error) VALUES (?,?,?,?,?, 'transient', ?, ?)",
                           (claim_id, kind, n, now, now, int(maybe_seen), error))
            if kind == "send" and maybe_seen:
                db.execute("UPDATE claims SET possible_duplicate = 1 WHERE claim_id = ?", (claim_id,))
        self._in_tx(end)

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
        statements: list[tuple[str, tuple]] = [(
                       "UPDATE claims SET state = ?, outcome = ?, dest = ?, finished_at = ?, "
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

    def for_sidecar(self, claim_id: str, name: str) -> SidecarView:
        """What a sidecar is built from, read in one transaction: the record, its attempts,
        and the replay history of ``name`` with the record's bytes: the sidecars of earlier
        failures that retry-failed put back, waiting for this claim's outcome or taken by it
        already (a finish redone after a crash builds the same sidecar again)."""
        return self._in_tx(lambda db: sidecar_view(db, claim_id, name), "BEGIN")

    # -- companion tables (ledger.py keeps its own table in this database) ---------------------


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
