"""Start-up recovery: finish what a crashed or killed process left half-done.

A crash between any two steps leaves a state that start-up recovery completes. Two
things can be left behind:

- claimed files of a process that is gone: adopted, then read again like any claim; the
  journal then decides whether each is finished (Redox accepted it: never re-sent), continued
  with its attempt count intact, or sent;
- journal rows whose file already reached done/ or failed/ but whose journal update did not
  happen (killed between the move and the commit): the row is completed from the sidecar.
"""

from __future__ import annotations

import logging

from pipeline.journal import Journal
from pipeline.sources.base import Source
from pipeline.values import Claim

log = logging.getLogger("pipeline.recovery")


def adopt(store: Source) -> list[Claim]:
    """Abandoned claims, moved into this process's claim folder."""
    claims = store.adopt_orphans()
    for claim in claims:
        log.info("recovered an abandoned claim", extra={"file": claim.name})
    return claims


def complete_journal(store: Source, journal: Journal) -> int:
    """Mark rows finished whose file was moved before the process died. Returns how many."""
    fixed = 0
    for record in journal.open_outcomes():
        status = record.outcome or "done"      # 'accepted' rows are done once moved
        dest = store.find_finished(record.name, status, record.claim_id, record.location)
        if dest:
            journal.finished(record.claim_id, dest, status)
            fixed += 1
    return fixed
