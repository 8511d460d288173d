"""What the runner does with each step a worker reports (work.Step): book the outcome, schedule
the retry, back off a stuck file, stop on refused credentials.

Runs on the loop's thread only, so nothing here needs a lock.
"""

from __future__ import annotations

import logging
from typing import Optional

from pipeline.flow.job import Job, Step
from pipeline.flow.loop import Loop, journal_write
from pipeline.flow.shutdown import release

log = logging.getLogger("pipeline.run")


def on_step(loop: Loop, job: Job, step: Step) -> None:
    """Book one step of ``job``; the pulse and the tally hear of it."""
    name, pulse = job.claim.name, loop.pulse
    loop.work.breaker.settle(job)       # a probe that asked Redox nothing frees the probe
    if step.kind != "stuck":
        loop.later.progressed(job.claim.location)
    if step.kind == "finished":
        loop.held.pop(job.claim.location, None)
        pulse.finished()
        loop.tally.finished(job, step)
    elif step.kind == "retry":
        pulse.retried(step.error, unreachable=step.unreachable)
        if (loop.once and not loop.tally.delivered_any
                and pulse.unreachable_streak() >= loop.work.breaker.threshold):
            loop.fatal = "Redox could not be reached"
        schedule(loop, job, step.delay, step.error)
        loop.tally.retried()
    elif step.kind == "wait":                # ordering: an earlier file of its key goes first
        loop.later.park(job, step.delay)
    elif step.kind == "stuck":
        if step.storage:
            pulse.storage_failed(step.error or "storage problem")
        _on_stuck(loop, job, step.error)
    elif step.kind == "auth":
        loop.fatal = step.error
        pulse.refused(step.error or "credentials refused")
        loop.ready.appendleft(job)          # released with the rest at shutdown
    elif step.kind == "lost":
        loop.held.pop(job.claim.location, None)
        log.warning("claimed file vanished before it was finished", extra={"file": name})
    elif step.kind == "released":
        loop.held.pop(job.claim.location, None)
        log.warning("returned to the inbox, where it is left alone", extra={
            "file": name, "error": step.error, "path": step.dest})
    loop.tally.stepped()


def _on_stuck(loop: Loop, job: Job, error: Optional[str]) -> None:
    """Could not read it consistently or finish it: it stays claimed and is tried again
    later (the schedule backs off). A --once run that must give up puts it back in the
    inbox; the journal keeps an accepted outcome, so the next run finishes it without
    sending it again, and the exit status is 1."""
    delay = loop.later.stuck(job.claim.location)
    if delay is None:
        log.error("could not finish; giving up for this run",
                  extra={"file": job.claim.name, "error": error})
        journal_write(loop, loop.journal.schedule, job, loop.wall())   # due at the next run
        release(loop, job)
        return
    schedule(loop, job, delay, error)


def schedule(loop: Loop, job: Job, delay: float, error: Optional[str]) -> None:
    """``job`` is tried again in ``delay`` seconds; the journal knows when (it survives a
    restart, and a --once run's next run honours it)."""
    journal_write(loop, loop.journal.schedule, job, loop.wall() + delay)
    loop.later.add(job, delay)
    log.info("retry scheduled", extra={"file": job.claim.name, "delay": round(delay, 3),
                                       "attempt": job.record.attempts if job.record else 0,
                                       "error": error})
