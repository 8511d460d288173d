"""The runner's claims and dispatch: how many files to take, where to claim them, and handing
them to workers.

Files in flight (being claimed, claimed and waiting for a worker, with a worker) never exceed
``loop.concurrency.target()``. A source whose claims cost round trips (S3:
``store.parallel_claims``) is claimed on worker threads, each claim reported back to the loop
as a ("claimed", drop, outcome) event; a local folder is claimed on the loop (a rename). Each
worker step and each claim tells the controller how long the storage held the file, the time
spent in Redox requests (the token, the limiter, the exchange) left out.
"""

from __future__ import annotations

import logging
import time

from pipeline.flow.job import Job, Step
from pipeline.flow.loop import Loop
from pipeline.redox.client import request_seconds
from pipeline.values import Claim, Drop

log = logging.getLogger("pipeline.run")


def room(loop: Loop) -> int:
    """How many more files may be claimed now: the target less those claimed or being claimed
    and not finished."""
    return loop.concurrency.target() - loop.inflight - len(loop.ready) - loop.claiming


def claim_ready(loop: Loop) -> None:
    """Claim while a worker would be free for it, Redox is not failing for everyone, and no
    stop was asked for: unclaimed files stay in the inbox for other processes."""
    free = room(loop)
    while (free > 0 and not loop.work.breaker.is_open and not loop.stop_reason
           and not loop.fatal and loop.winding_since is None):
        settled = loop.intake.next_settled()
        if settled is None:
            return
        free -= 1
        if loop.parallel_claims:
            loop.claiming += 1
            loop.pool.submit(claim_on_worker, loop, settled)
            continue
        claim = loop.intake.claimed(settled, loop.intake.try_claim(settled))
        if claim is not None:
            hold(loop, claim)


def claim_on_worker(loop: Loop, settled: Drop) -> None:
    """On a worker thread: one claim, reported back to the loop."""
    started = time.monotonic()
    try:
        tried = loop.intake.try_claim(settled)
    except Exception as exc:   # a bug must not leave the loop counting a claim forever
        log.exception("unexpected error while claiming", extra={"file": settled.name})
        tried = ("unclaimed", f"unexpected {exc.__class__.__name__}")
    loop.concurrency.observe_storage(time.monotonic() - started, "claim")
    loop.events.put(("claimed", settled, tried))


def claimed(loop: Loop, settled: Drop, tried) -> None:
    """Loop: a claim made on a worker thread came back."""
    loop.claiming -= 1
    claim = loop.intake.claimed(settled, tried)
    if claim is not None:
        hold(loop, claim)


def hold(loop: Loop, claim: Claim) -> None:
    job = Job(claim)
    loop.held[claim.location] = job
    loop.ready.append(job)
    loop.tally.claimed()


def dispatch(loop: Loop) -> None:
    target = loop.concurrency.target()
    while loop.ready and loop.inflight < target and loop.winding_since is None:
        if not loop.work.breaker.allow(loop.ready[0]):
            return
        job = loop.ready.popleft()
        loop.inflight += 1
        loop.pool.submit(work, loop, job)


def work(loop: Loop, job: Job) -> None:
    """On a worker thread: one step of ``job``, reported back to the loop."""
    request_seconds()                       # this thread's count starts here
    started = time.monotonic()
    try:
        step = loop.work.run(job)
    except Exception as exc:   # a bug must not stall the service: keep the file claimed
        log.exception("unexpected error", extra={"file": job.claim.name})
        step = Step("stuck", error=f"unexpected {exc.__class__.__name__}")
    loop.concurrency.observe_storage(time.monotonic() - started - request_seconds())
    loop.events.put(("step", job, step))
