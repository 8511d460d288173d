"""Delivery confirmation as operators see it: the sidecar's ``delivery`` field, the counts
status/report/metrics show, and ``--since``.

A sidecar's ``delivery`` maps each Log ID to Redox's word on it::

    "delivery": {"<Log ID>": {"status": "succeeded", "attempts": 1,
                              "attempt_at": "<attempts.latest.attemptAt>",
                              "checked_at": "2026-01-02T03:04:05.678+00:00", "checks": 1,
                              "final": true, "gave_up": false}}

``status`` is succeeded | failed | filtered | pending; ``attempts`` Redox's attempt count;
``final`` true once no more look-ups will be made; ``gave_up`` true when it was still pending
``delivery_check.give_up_after_hours`` after the SEND; ``error`` (when present) why the last
look-up gave no status. Counts are per Log ID: one Log ID is one destination of one file.
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timezone
from typing import Optional

from pipeline import timefmt
from pipeline.journal import Journal
from pipeline.journal.ledger import Delivery, DeliveryLedger
from pipeline.timefmt import iso
from pipeline.values import FINAL_STATUSES

OUTCOMES = ("delivered", "filtered", "failed", "gave_up", "pending")


def delivery_summary(source, since=None) -> dict:
    """Counts for ``status``, ``report`` and the metrics endpoint.

    ``source`` is the Settings (the journal at ``state.path`` is opened and closed; all zeros
    when it does not exist yet) or an open Journal. ``since`` (epoch seconds, a date/datetime or
    ISO text; see parse_since) keeps deliveries whose SEND was at or after it. Returns::

        {"delivered": n, "filtered": n, "failed": n, "gave_up": n, "pending": n,
         "unchecked": n,   # Log IDs of done files no reconcile pass has recorded yet
         "problems": [{"file", "ref", "log_id", "status", "gave_up", "sent_at", "checked_at",
                       "error"}, ...]}   # the failed and given-up ones, oldest SEND first

    Raises ValueError for a bad ``since``, StorageError when the journal cannot be opened.
    """
    since = parse_since(since)
    if isinstance(source, Journal):
        return _summarize(source, since)
    if not os.path.exists(source.state.path):
        return dict(dict.fromkeys(OUTCOMES, 0), unchecked=0, problems=[])
    journal = Journal(source.state.path)
    try:
        return _summarize(journal, since)
    finally:
        journal.close()


def _summarize(journal: Journal, since: Optional[float]) -> dict:
    ledger = DeliveryLedger(journal)
    rows = ledger.all(since)
    problems = sorted((r for r in rows if r.outcome() in ("failed", "gave_up")),
                      key=lambda r: (r.sent_at or 0, r.ref, r.log_id))
    return dict(count(rows), unchecked=ledger.unchecked(since), problems=[
        {"file": r.name or r.ref, "ref": r.ref, "log_id": r.log_id, "status": r.status,
         "gave_up": r.gave_up, "sent_at": iso(r.sent_at), "checked_at": iso(r.checked_at),
         "error": r.error} for r in problems])


def count(rows) -> dict:
    """How many of ``rows`` (Delivery values) are delivered, filtered, failed, gave_up, pending."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for row in rows:
        counts[row.outcome()] += 1
    return counts


def log_ids_of(doc: dict) -> list[str]:
    """The sidecar's Log IDs (``logs[].ID``), in order, without repeats."""
    found = doc.get("logs")
    logs = found if isinstance(found, list) else []
    ids = [e.get("ID") for e in logs if isinstance(e, dict)]
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


def sent_time(doc: dict) -> Optional[float]:
    """When Redox accepted the SEND: the last accepted send in ``attempt_history``, else
    ``finished_at`` (epoch seconds), else None."""
    found = doc.get("attempt_history")
    history = found if isinstance(found, list) else []
    accepted = [a.get("at") for a in history if isinstance(a, dict) and a.get("kind") == "send"
                and a.get("result") == "accepted"]
    for value in [*reversed(accepted), doc.get("finished_at")]:
        when = _epoch(value)
        if when is not None:
            return when
    return None


def as_sidecar(row: Delivery) -> dict:
    """One Log ID's entry in the sidecar's ``delivery``: status, attempt count, when it was
    checked."""
    entry = {"status": row.status, "attempts": row.total, "attempt_at": row.attempt_at,
             "checked_at": iso(row.checked_at), "checks": row.checks, "final": row.final,
             "gave_up": row.gave_up}
    if row.error:
        entry["error"] = row.error
    return entry


def from_sidecar(doc: dict, log_id: str, base: Delivery) -> Optional[Delivery]:
    """A final entry the sidecar already holds for ``log_id``, as a ledger row; else None."""
    found = doc.get("delivery")
    delivery = found if isinstance(found, dict) else {}
    entry = delivery.get(log_id)
    if not isinstance(entry, dict):
        return None
    status, gave_up = entry.get("status"), entry.get("gave_up") is True
    if status not in FINAL_STATUSES and not (gave_up and status == "pending"):
        return None
    total = entry.get("attempts")
    return base.replace(log_id=log_id, status=status, gave_up=gave_up,
                        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
                        attempt_at=_str(entry.get("attempt_at")),
                        checked_at=_epoch(entry.get("checked_at")),
                        checks=entry.get("checks") if isinstance(entry.get("checks"), int) else 0,
                        error=_str(entry.get("error")))


def parse_since(value) -> Optional[float]:
    """``since`` for delivery_summary: None, epoch seconds, a date or datetime (naive = UTC),
    or text as every ``--since`` takes it (timefmt.parse_since: a date, a date-time or an age).
    Raises ValueError for anything else."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    return timefmt.parse_since(str(value), time.time())


def _epoch(value) -> Optional[float]:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _str(value) -> Optional[str]:
    return value if isinstance(value, str) else None
