"""The runner's way out: let requests in flight end, put every other claim back in the inbox.

Called once, when the loop has returned (a stop was asked for, a ``--once`` run is complete or
gave up on Redox, or the credentials were refused). Nothing here decides *whether* to stop.
"""

from __future__ import annotations

import logging

from pipeline.errors import AuthError, ClaimLost, StorageError
from pipeline.flow.job import Job
from pipeline.flow.loop import Loop, journal_write

log = logging.getLogger("pipeline.run")
CLAIMS_WAIT = 30.0


def shutdown(loop: Loop, wait: float) -> None:
    """Let in-flight work finish within ``wait`` seconds; release everything else.

    Requests still in flight after that are left: their files stay claimed, the journal shows
    the attempt as started, and the next start recovers them (``possible_duplicate``)."""
    deadline = loop.mono() + wait
    # claims under way on worker threads take a few storage round trips: their files are
    # waited for (whatever ``wait``) and put back, not left claimed until a lease expires
    claims_deadline = loop.mono() + max(wait, CLAIMS_WAIT)
    while ((loop.inflight and loop.mono() < deadline)
           or (loop.claiming and loop.mono() < claims_deadline)):
        loop.turn_hook()
        until = claims_deadline if loop.claiming else deadline
        loop.drain(min(0.5, max(0.0, until - loop.mono())))
    for job in list(loop.ready) + loop.later.take_all():
        release(loop, job)
    loop.ready.clear()
    busy = loop.inflight or loop.claiming
    loop.pool.shutdown(wait=not busy, cancel_futures=True)
    if busy:
        log.warning("stopping with requests still in flight; their files stay claimed and "
                    "are recovered at the next start", extra={"in_flight": loop.inflight})
    else:
        loop.store.close()


def release(loop: Loop, job: Job) -> None:
    """Put one claimed file back in the inbox; the journal keeps its attempts and schedule
    (``released``, with ``next_retry_at``), so the next run continues where this one was."""
    try:
        where = loop.store.release(job.claim)
    except (ClaimLost, StorageError, AuthError) as exc:
        log.error("could not release a claimed file; it is recovered at the next start",
                  extra={"file": job.claim.name, "error": str(exc)})
        return
    loop.held.pop(job.claim.location, None)
    journal_write(loop, loop.journal.released, job, loop.wall())
    loop.tally.released()
    log.info("released to the inbox", extra={"file": job.claim.name, "path": where})
