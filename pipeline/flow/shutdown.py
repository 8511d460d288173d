"""The runner's way out: let requests in flight end, put every other claim back in the inbox.

Called once, when the loop has returned (a stop was asked for, a ``--once`` run is complete or
gave up on Redox, or the credentials were refused). Nothing here decides *whether* to stop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline.errors import AuthError, ClaimLost, StorageError
from pipeline.flow.work import Job

if TYPE_CHECKING:
    from pipeline.flow.runner import Runner

log = logging.getLogger("pipeline.run")
CLAIMS_WAIT = 30.0


def shutdown(runner: Runner, wait: float) -> None:
    """Let in-flight work finish within ``wait`` seconds; release everything else.

    Requests still in flight after that are left: their files stay claimed, the journal shows
    the attempt as started, and the next start recovers them (``possible_duplicate``)."""
    deadline = runner.mono() + wait
    # claims under way on worker threads take a few storage round trips: their files are
    # waited for (whatever ``wait``) and put back, not left claimed until a lease expires
    claims_deadline = runner.mono() + max(wait, CLAIMS_WAIT)
    while ((runner.inflight and runner.mono() < deadline)
           or (runner.claiming and runner.mono() < claims_deadline)):
        runner.turn_hook()
        until = claims_deadline if runner.claiming else deadline
        runner.drain(min(0.5, max(0.0, until - runner.mono())))
    for job in list(runner.ready) + runner.later.take_all():
        release(runner, job)
    runner.ready.clear()
    busy = runner.inflight or runner.claiming
    runner.pool.shutdown(wait=not busy, cancel_futures=True)
    if busy:
        log.warning("stopping with requests still in flight; their files stay claimed and "
                    "are recovered at the next start", extra={"in_flight": runner.inflight})
    else:
        runner.store.close()


def release(runner: Runner, job: Job) -> None:
    """Put one claimed file back in the inbox; the journal keeps its attempts and schedule
    (``released``, with ``next_retry_at``), so the next run continues where this one was."""
    try:
        where = runner.store.release(job.claim)
    except (ClaimLost, StorageError, AuthError) as exc:
        log.error("could not release a claimed file; it is recovered at the next start",
                  extra={"file": job.claim.name, "error": str(exc)})
        return
    runner.held.pop(job.claim.location, None)
    runner.journal_write(runner.journal.released, job, runner.wall())
    runner.tally.released()
    log.info("released to the inbox", extra={"file": job.claim.name, "path": where})
