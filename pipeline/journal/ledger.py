"""The delivery ledger: what Redox said about each Log ID, kept in the journal's database.

One row per Log ID (``deliveries``): Redox's latest status, attempt count and attempt time, when
we looked and how often, and whether we gave up waiting. A file whose Log IDs are all settled
is listed in ``delivery_files`` so later passes need not even read its sidecar. Rows are
upserted, so a pass that is interrupted and run again records the same thing twice at worst.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Optional

from pipeline.journal import Journal
from pipeline.values import FINAL_STATUSES

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    log_id TEXT PRIMARY KEY,
    ref TEXT NOT NULL,               -- the file below folders.done
    name TEXT,
    claim_id TEXT,
    sent_at REAL,                    -- the accepted SEND; the give-up time counts from it
    status TEXT NOT NULL,            -- succeeded | failed | filtered | pending
    total INTEGER,                   -- Redox's attempts.total
    attempt_at TEXT,                 -- Redox's attempts.latest.attemptAt, as Redox wrote it
    checked_at REAL,                 -- our last look-up (NULL: taken over from a sidecar)
    checks INTEGER NOT NULL DEFAULT 0,
    final INTEGER NOT NULL DEFAULT 0,    -- no more look-ups: a final status, or gave_up
    gave_up INTEGER NOT NULL DEFAULT 0,  -- still pending when give_up_after_hours ran out
    error TEXT                       -- why the last look-up gave no status
);
CREATE INDEX IF NOT EXISTS deliveries_by_ref ON deliveries (ref);
CREATE INDEX IF NOT EXISTS deliveries_by_sent ON deliveries (sent_at);
CREATE TABLE IF NOT EXISTS delivery_files (
    ref TEXT PRIMARY KEY,            -- every Log ID of this file is final: its sidecar is complete
    settled_at REAL NOT NULL
);
"""

COLUMNS = ("log_id", "ref", "name", "claim_id", "sent_at", "status", "total", "attempt_at",
           "checked_at", "checks", "final", "gave_up", "error")


@dataclass(frozen=True)
class Delivery:
    """One Log ID's delivery as recorded (a ledger row)."""
    log_id: str
    ref: str
    name: Optional[str] = None
    claim_id: Optional[str] = None
    sent_at: Optional[float] = None
    status: str = "pending"
    total: Optional[int] = None
    attempt_at: Optional[str] = None
    checked_at: Optional[float] = None
    checks: int = 0
    gave_up: bool = False
    error: Optional[str] = None

    @property
    def final(self) -> bool:
        """No more look-ups: Redox gave a final status, or we stopped waiting."""
        return self.status in FINAL_STATUSES or self.gave_up

    def replace(self, **changes) -> "Delivery":
        return dataclasses.replace(self, **changes)

    def outcome(self) -> str:
        """The one word reports count by: delivered, filtered, failed, gave_up or pending."""
        if self.status == "succeeded":
            return "delivered"
        if self.status in ("failed", "filtered"):
            return self.status
        return "gave_up" if self.gave_up else "pending"


class DeliveryLedger:
    """The ``deliveries`` and ``delivery_files`` tables of ``journal`` (created if missing)."""

    def __init__(self, journal: Journal):
        self.journal = journal
        journal.ensure_schema(SCHEMA)

    def settled(self) -> set[str]:
        """Refs whose every Log ID is final: their sidecars need no more work."""
        return {row["ref"] for row in self.journal.query("SELECT ref FROM delivery_files")}

    def settle(self, ref: str, now: float) -> None:
        self.journal.transaction([("INSERT OR REPLACE INTO delivery_files (ref, settled_at) "
                                   "VALUES (?, ?)", (ref, now))])

    def get(self, log_ids: Iterable[str]) -> dict[str, Delivery]:
        """The recorded rows for ``log_ids`` (missing ones are simply absent)."""
        ids = list(log_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.journal.query(f"SELECT * FROM deliveries WHERE log_id IN ({marks})", ids)
        return {row["log_id"]: _delivery(row) for row in rows}

    def save(self, deliveries: Iterable[Delivery]) -> None:
        """Upsert rows, all in one transaction."""
        sql = (f"INSERT OR REPLACE INTO deliveries ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(COLUMNS))})")
        statements = [(sql, (d.log_id, d.ref, d.name, d.claim_id, d.sent_at, d.status, d.total,
                             d.attempt_at, d.checked_at, d.checks, int(d.final), int(d.gave_up),
                             d.error)) for d in deliveries]
        if statements:
            self.journal.transaction(statements)

    def all(self, since: Optional[float] = None) -> list[Delivery]:
        """Every recorded delivery whose SEND was at or after ``since`` (epoch seconds)."""
        if since is None:
            rows = self.journal.query("SELECT * FROM deliveries")
        else:
            rows = self.journal.query("SELECT * FROM deliveries WHERE sent_at >= ?", (since,))
        return [_delivery(row) for row in rows]

    def unchecked(self, since: Optional[float] = None) -> int:
        """Log IDs of files this journal finished as done that no pass has recorded yet."""
        sql = ("SELECT COUNT(*) AS n FROM claims c, json_each(c.logs) j "
               "WHERE c.state = 'done' AND json_extract(j.value, '$.ID') IS NOT NULL "
               "AND json_extract(j.value, '$.ID') NOT IN (SELECT log_id FROM deliveries)")
        args: tuple = ()
        if since is not None:
            sql += " AND c.finished_at >= ?"
            args = (since,)
        return int(self.journal.query(sql, args)[0]["n"])


def _delivery(row: dict) -> Delivery:
    return Delivery(log_id=row["log_id"], ref=row["ref"], name=row["name"],
                    claim_id=row["claim_id"], sent_at=row["sent_at"], status=row["status"],
                    total=row["total"], attempt_at=row["attempt_at"],
                    checked_at=row["checked_at"], checks=row["checks"],
                    gave_up=bool(row["gave_up"]), error=row["error"])
