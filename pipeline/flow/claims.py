"""The runner's claims and dispatch: how many files to take, where to claim them, and handing
them to workers.

Files in flight (being claimed, claimed and waiting for a worker, with a worker) never exceed
``runner.concurrency.target()``. A source whose claims cost round trips (S3:
``store.parallel_claims``) is claimed on worker threads, each claim reported back to the loop
as a ("claimed", drop, outcome) event; a local folder is claimed on the loop (a rename). Each
worker step and each claim tells the controller how long the storage held the file, the time
spent in Redox requests (the token, the limiter, the exchange) left out.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pipeline.flow.work import Job, Step
from pipeline.redox.client import request_seconds
from pipeline.values import Claim, Drop

if TYPE_CHECKING:
    from pipeline.flow.runner import Runner

log = logging.getLogger("pipeline.run")


def room(runner: Runner) -> int:
    """How many more files may be claimed now: the target less those claimed or being claimed
    and not finished."""
    return runner.concurrency.target() - runner.inflight - len(runner.ready) - runner.claiming


def claim_ready(runner: Runner) -> None:
    """Claim while a worker would be free for it, Redox is not failing for everyone, and no
    stop was asked for: unclaimed files stay in the inbox for other processes."""
    free = room(runner)
    while (free > 0 and not runner.work.breaker.is_open and not runner.stop_reason
           and not runner.fatal and runner.winding_since is None):
        settled = runner.intake.next_settled()
        if settled is None:
            return
        free -= 1
        if runner.parallel_claims:
            runner.claiming += 1
            runner.pool.submit(claim_on_worker, runner, settled)
            continue
        claim = runner.intake.claimed(settled, runner.intake.try_claim(settled))
        if claim is not None:
            hold(runner, claim)


def claim_on_worker(runner: Runner, settled: Drop) -> None:
    """On a worker thread: one claim, reported back to the loop."""
    started = time.monotonic()
    try:
        tried = runner.intake.try_claim(settled)
    except Exception as exc:   # a bug must not leave the loop counting a claim forever
        log.exception("unexpected error while claiming", extra={"file": settled.name})
        tried = ("unclaimed", f"unexpected {exc.__class__.__name__}")
    runner.concurrency.observe_storage(time.monotonic() - started, "claim")
    runner.events.put(("claimed", settled, tried))


def claimed(runner: Runner, settled: Drop, tried) -> None:
    """Loop: a claim made on a worker thread came back."""
    runner.claiming -= 1
    claim = runner.intake.claimed(settled, tried)
    if claim is not None:
        hold(runner, claim)


def hold(runner: Runner, claim: Claim) -> None:
    job = Job(claim)
    runner.held[claim.location] = job
    runner.ready.append(job)
    runner.tally.claimed()


def dispatch(runner: Runner) -> None:
    target = runner.concurrency.target()
    while runner.ready and runner.inflight < target and runner.winding_since is None:
        if not runner.work.breaker.allow(runner.ready[0]):
            return
        job = runner.ready.popleft()
        runner.inflight += 1
        runner.pool.submit(work, runner, job)


def work(runner: Runner, job: Job) -> None:
    """On a worker thread: one step of ``job``, reported back to the loop."""
    request_seconds()                       # this thread's count starts here
    started = time.monotonic()
    try:
        step = runner.work.run(job)
    except Exception as exc:   # a bug must not stall the service: keep the file claimed
        log.exception("unexpected error", extra={"file": job.claim.name})
        step = Step("stuck", error=f"unexpected {exc.__class__.__name__}")
    runner.concurrency.observe_storage(time.monotonic() - started - request_seconds())
    runner.events.put(("step", job, step))
