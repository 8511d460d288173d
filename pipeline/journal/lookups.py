"""The journal's read-only look-ups: dedupe's question, what recovery completes, and what
``status`` and ``report`` count. Journal (core.py) adds the writes.
"""

from __future__ import annotations

from typing import Optional

from pipeline.journal.database import Database
from pipeline.journal.records import Record, attempts, record_of


class Lookups(Database):
    """Questions asked of the journal that change nothing."""

    def attempts_of(self, claim_id: str) -> list[dict]:
        return self._in_tx(lambda db: attempts(db, claim_id), "")

    def delivered(self, sha256: str, exclude: str) -> Optional[str]:
        """Where the same bytes were delivered before (dedupe), or None. Bytes count as
        delivered as soon as Redox accepted them, even if that file's finish is still pending,
        and for as long as retention keeps them (``delivered_hashes``) after their claim row
        was pruned."""
        def look(db):                  # one round with the database, both tables
            row = db.execute(
                "SELECT dest, name, state FROM claims WHERE sha256 = ? AND claim_id != ? AND "
                "duplicate_of IS NULL AND logs != '[]' AND (state IN ('done', 'accepted') OR "
                "(state = 'finishing' AND outcome = 'done')) "
                "ORDER BY state = 'done' DESC, finished_at LIMIT 1", (sha256, exclude)).fetchone()
            if row is None:
                # claim rows pruned by retention leave their delivered bytes behind (retention.py)
                row = db.execute("SELECT dest, name FROM delivered_hashes WHERE sha256 = ?",
                                 (sha256,)).fetchone()
            return row

        row = self._in_tx(look, "")
        if row is None:
            return None
        return row["dest"] or f"{row['name']} (being finished)"

    def not_due(self, now: float) -> dict[str, float]:
        """Inbox names released for a retry that is not due yet: name → when it is."""
        rows = self._query("SELECT name, MAX(next_retry_at) AS t FROM claims WHERE state = 'released' "
                           "AND next_retry_at > ? GROUP BY name", (now,))
        return {r["name"]: r["t"] for r in rows}

    def open_outcomes(self) -> list[Record]:
        """Claims whose outcome is decided or whose SEND was accepted, not yet finished:
        what start-up recovery completes."""
        rows = self._query("SELECT * FROM claims WHERE state IN ('finishing', 'accepted')")
        return [record_of(r) for r in rows]

    def finished_since(self, since: float) -> list[Record]:
        """Claims that reached done/ or failed/ at or after ``since`` (epoch seconds)."""
        rows = self._query("SELECT * FROM claims WHERE state IN ('done', 'failed') AND finished_at >= ?",
                           (since,))
        return [record_of(r) for r in rows]

    def scheduled_retries(self) -> list[Record]:
        """Claims waiting for a retry (held by a service, or released to the inbox), soonest first."""
        rows = self._query("SELECT * FROM claims WHERE state IN ('waiting', 'released') AND "
                           "next_retry_at IS NOT NULL ORDER BY next_retry_at")
        return [record_of(r) for r in rows]

    def outcomes_by_route(self) -> dict[str, dict[str, int]]:
        """route name → {"done": n, "failed": n} over every finished claim; files never
        routed count under "unrouted" (no route matched) or "(not routed)" (rejected before)."""
        rows = self._query(
            "SELECT COALESCE(route, CASE WHEN reason_kind = 'unrouted' THEN 'unrouted' "
            "ELSE '(not routed)' END) AS route, state, COUNT(*) AS n FROM claims "
            "WHERE state IN ('done', 'failed') GROUP BY 1, 2")
        found: dict[str, dict[str, int]] = {}
        for row in rows:
            found.setdefault(row["route"], {"done": 0, "failed": 0})[row["state"]] = row["n"]
        return found

