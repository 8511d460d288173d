"""The typed rows the journal hands out, and how they are read from SQLite rows."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Optional


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
    location: Optional[str] = None       # where the claimed file lies (processing)
    data_model: Optional[str] = None
    event_type: Optional[str] = None
    dropped_at: Optional[float] = None
    finished_at: Optional[float] = None
    route: Optional[str] = None          # the route that chose its destinations
    destinations: Optional[list] = None  # the Meta.Destinations it was sent to


@dataclass(frozen=True)
class SidecarView:
    """What a finished file's sidecar is built from, read in one transaction."""
    record: Record
    attempts: list
    replay_ids: list
    history: list


def sidecar_view(db, claim_id: str, name: str) -> SidecarView:
    """What a sidecar is built from, read with ``db`` (inside the caller's transaction)."""
    record = record_of(db.execute("SELECT * FROM claims WHERE claim_id = ?", (claim_id,)).fetchone())
    return SidecarView(record, attempts(db, claim_id), *replays(db, claim_id, name, record.sha256))


def attempts(db, claim_id: str) -> list[dict]:
    rows = db.execute("SELECT kind, n, started_at, ended_at, status, result, maybe_seen, error "
                      "FROM attempts WHERE claim_id = ? ORDER BY started_at, n", (claim_id,))
    return [dict(r) for r in rows]


def replays(db, claim_id: str, name: str, sha256: Optional[str]) -> tuple[list[int], list[dict]]:
    rows = db.execute("SELECT id, history FROM replays WHERE name = ? AND sha256 = ? AND "
                      "(consumed_by IS NULL OR consumed_by = ?) ORDER BY id",
                      (name, sha256 or "", claim_id)).fetchall()
    return [r["id"] for r in rows], [doc for r in rows for doc in json.loads(r["history"])]


def record_of(row: sqlite3.Row) -> Record:
    return Record(
        claim_id=row["claim_id"], name=row["name"], state=row["state"], attempts=row["attempts"],
        possible_duplicate=bool(row["possible_duplicate"]), logs=json.loads(row["logs"]),
        errors=json.loads(row["errors"]), uploads=json.loads(row["uploads"]),
        http_status=row["http_status"], outcome=row["outcome"], reason_kind=row["reason_kind"],
        next_retry_at=row["next_retry_at"], dest=row["dest"], sha256=row["sha256"],
        duplicate_of=row["duplicate_of"], location=row["location"], data_model=row["data_model"],
        event_type=row["event_type"], dropped_at=row["dropped_at"], finished_at=row["finished_at"],
        route=row["route"], destinations=json.loads(row["destinations"]) if row["destinations"] else None)
