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


def shutdown(runner: Runner, wait: float) -> None:
    """Let in-flight work finish within ``wait`` seconds; release everything else.

    Requests still in flight after that are left: their files stay claimed, the journal shows
    the attempt as started, and the next start recovers them (``possible_duplicate``)."""
    deadline = runner.mono() + wait
    while runner.inflight and runner.mono() < deadline:
        runner.turn_hook()
        runner.drain(min(0.5, max(0.0, deadline - runner.mono())))
    for job in list(runner.ready) + runner.later.take_all():
        release(runner, job)
    runner.ready.clear()
    runner.pool.shutdown(wait=not runner.inflight, cancel_futures=True)
    if runner.inflight:
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
