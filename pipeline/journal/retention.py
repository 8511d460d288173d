"""Retention for the journal: forget what files finished long ago, keep what is still needed.

``prune(cutoff, dedupe_cutoff)`` deletes the claim rows (with their attempts and the replay
history their sidecars took in) of files that reached done/ or failed/ before ``cutoff``
(epoch seconds). Kept, whatever their age:

- every claim not finished yet (claimed, waiting, released, accepted, finishing): recovery,
  retries and ``status`` need them;
- the sha256 of every delivered file, in ``delivered_hashes`` (one small row per distinct
  content), until ``dedupe_cutoff``: dedupe must still recognise those bytes if they are
  dropped again (None: for ever);
- delivery confirmation's rows (``deliveries``) that are not final, and final ones of files
  whose every Log ID is not settled yet: ``reconcile`` needs them. Final rows of settled files
  older than ``cutoff`` go, and ``delivery_files`` rows of files removed from done/ (``gone``).

Work is done in batches, each its own transaction, so a service sharing the journal waits
for one batch at most, never for the whole pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from pipeline.journal.core import Journal

BATCH = 2000
REFS_PER_DELETE = 500     # under SQLite's oldest limit of 999 parameters per statement
FINISHED = "state IN ('done', 'failed') AND finished_at < ?"
DELIVERED = "state = 'done' AND duplicate_of IS NULL AND logs != '[]' AND COALESCE(sha256, '') != ''"


@dataclass
class JournalCounts:
    """What a pass removed (or, dry run, would remove)."""
    claims: int = 0                # claim rows of files finished before the cutoff
    attempts: int = 0
    replays: int = 0
    hashes_kept: int = 0           # delivered sha256 copied aside for dedupe
    hashes_forgotten: int = 0      # delivered sha256 older than the dedupe horizon
    deliveries: int = 0            # final delivery-confirmation rows of settled files
    delivery_files: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "notes"}


def prune(journal: Journal, cutoff: float, dedupe_cutoff: Optional[float], *, dry_run: bool = False,
          gone: Iterable[str] = (), should_stop=lambda: False) -> JournalCounts:
    """Remove (or count, ``dry_run``) what the module docstring says may go. ``gone``: paths
    below done/ that were removed from the folder (their ``delivery_files`` rows go)."""
    counts = JournalCounts()
    if dry_run:
        _count(journal, cutoff, dedupe_cutoff, counts)
        return counts
    while not should_stop():
        ids = [r["claim_id"] for r in journal.query(
            f"SELECT claim_id FROM claims WHERE {FINISHED} LIMIT {BATCH}", (cutoff,))]
        if not ids:
            break
        _prune_batch(journal, ids, dedupe_cutoff, counts)
    if dedupe_cutoff is not None:
        counts.hashes_forgotten = _changes(journal, "DELETE FROM delivered_hashes WHERE delivered_at < ?",
                                           (dedupe_cutoff,))
    if _has_ledger(journal):
        counts.deliveries = _changes(journal, (
            "DELETE FROM deliveries WHERE final = 1 AND COALESCE(checked_at, sent_at, 0) < ? "
            "AND ref IN (SELECT ref FROM delivery_files)"), (cutoff,))
        refs = list(gone)
        for start in range(0, len(refs), REFS_PER_DELETE):      # one commit per chunk, not per file
            chunk = tuple(refs[start:start + REFS_PER_DELETE])
            counts.delivery_files += _changes(
                journal, f"DELETE FROM delivery_files WHERE ref IN ({', '.join('?' * len(chunk))})", chunk)
    return counts


def _prune_batch(journal: Journal, ids: list[str], dedupe_cutoff: Optional[float],
                 counts: JournalCounts) -> None:
    marks = ",".join("?" * len(ids))
    horizon = "" if dedupe_cutoff is None else " AND finished_at >= ?"
    keep_args: tuple = tuple(ids) + (() if dedupe_cutoff is None else (dedupe_cutoff,))

    def run(db):
        kept = db.execute(
            f"INSERT INTO delivered_hashes (sha256, dest, name, delivered_at) "
            f"SELECT sha256, dest, name, finished_at FROM claims WHERE claim_id IN ({marks}) "
            f"AND {DELIVERED}{horizon} ORDER BY finished_at "
            f"ON CONFLICT(sha256) DO UPDATE SET dest = excluded.dest, name = excluded.name, "
            f"delivered_at = excluded.delivered_at WHERE excluded.delivered_at > delivered_at",
            keep_args).rowcount
        attempts = db.execute(f"DELETE FROM attempts WHERE claim_id IN ({marks})", ids).rowcount
        replays = db.execute(f"DELETE FROM replays WHERE consumed_by IN ({marks})", ids).rowcount
        claims = db.execute(f"DELETE FROM claims WHERE claim_id IN ({marks})", ids).rowcount
        return kept, attempts, replays, claims

    kept, attempts, replays, claims = journal._in_tx(run)
    counts.hashes_kept += max(0, kept)
    counts.attempts += attempts
    counts.replays += replays
    counts.claims += claims


def _count(journal: Journal, cutoff: float, dedupe_cutoff: Optional[float], counts: JournalCounts) -> None:
    one = lambda sql, args: int(journal.query(sql, args)[0]["n"])   # noqa: E731
    counts.claims = one(f"SELECT COUNT(*) AS n FROM claims WHERE {FINISHED}", (cutoff,))
    counts.attempts = one(f"SELECT COUNT(*) AS n FROM attempts WHERE claim_id IN "
                          f"(SELECT claim_id FROM claims WHERE {FINISHED})", (cutoff,))
    counts.replays = one(f"SELECT COUNT(*) AS n FROM replays WHERE consumed_by IN "
                         f"(SELECT claim_id FROM claims WHERE {FINISHED})", (cutoff,))
    horizon, args = ("", (cutoff,)) if dedupe_cutoff is None else (" AND finished_at >= ?", (cutoff, dedupe_cutoff))
    counts.hashes_kept = one(f"SELECT COUNT(DISTINCT sha256) AS n FROM claims WHERE {FINISHED} "
                             f"AND {DELIVERED}{horizon}", args)
    if dedupe_cutoff is not None:
        counts.hashes_forgotten = one("SELECT COUNT(*) AS n FROM delivered_hashes WHERE delivered_at < ?",
                                      (dedupe_cutoff,))
    if _has_ledger(journal):
        counts.deliveries = one("SELECT COUNT(*) AS n FROM deliveries WHERE final = 1 AND "
                                "COALESCE(checked_at, sent_at, 0) < ? AND ref IN "
                                "(SELECT ref FROM delivery_files)", (cutoff,))


def _changes(journal: Journal, sql: str, args: tuple) -> int:
    return journal._in_tx(lambda db: db.execute(sql, args).rowcount, "")


def _has_ledger(journal: Journal) -> bool:
    return bool(journal.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'"))
