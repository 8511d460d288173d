"""finish: write the sidecar, then move the file beside it (the move is the commit point).

The outcome is first recorded in the journal (``finishing``), so a crash at any point after it
is completed by start-up recovery; the sidecar carries the ``claim_id`` so recovery can tell its
own half-finished sidecar from someone else's file. Sidecars hold names, hashes, statuses, Log
IDs and reasons, never message content.
"""

from __future__ import annotations

from typing import Optional

from pipeline import failpoints, sidecar
from pipeline.journal import Journal, Record, SidecarView
from pipeline.values import Claim, Outcome


def finish(store, journal: Journal, claim: Claim, record: Record, outcome: Outcome,
           extra: Optional[dict] = None, view: Optional[SidecarView] = None) -> tuple[str, Record]:
    """Record ``outcome``, write the sidecar and move the file. Returns where it landed and
    the journal's record as the sidecar shows it.

    The sidecar's ``history`` lists the sidecars of earlier failures of the same file (same
    inbox name and bytes) that ``retry-failed`` put back, oldest first. ``view``: what the
    journal held when the SEND was accepted (read in the same transaction), if at hand.

    Raises StorageError (the file then stays claimed) or ClaimLost.
    """
    if outcome.status != "done" or outcome.duplicate_of:
        # a done outcome otherwise comes from an accepted SEND, which the journal already
        # holds (state accepted): enough for recovery to finish it as done
        journal.finishing(record.claim_id, outcome.status, list(outcome.errors), outcome.reason_kind,
                          outcome.duplicate_of)
        view = None
    if view is None:
        view = journal.for_sidecar(record.claim_id, claim.name)
    doc = sidecar.build(claim, view.record, outcome, view.attempts, extra)
    # A file put back by retry-failed carries its earlier sidecars along (journal: replays).
    if view.history:
        doc["history"] = view.history
    dest = store.finish(claim, outcome.status, sidecar.encode(doc), record.claim_id)
    failpoints.reached("after_move")
    journal.finished(record.claim_id, dest, outcome.status, view.replay_ids)
    return dest, view.record
