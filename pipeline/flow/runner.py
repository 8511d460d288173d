"""The runner: one loop that calls the stages in order for every file.

    discover ──> claim ──> [worker thread: read + check ──> route ──> deliver ──> finish]

The loop alone claims, schedules and releases; workers do the blocking work and report a
:class:`~pipeline.work.Step` back through one event queue (watchdog hints arrive on it too), so
a file waiting for a retry holds no worker and one slow file never blocks the others.
``--once`` takes the files present at start; the service keeps watching until ``stop()``.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from pipeline.errors import AuthError, ClaimLost, StorageError
from pipeline.exits import Exit
from pipeline.flow import recovery
from pipeline.flow.intake import Intake
from pipeline.flow.parking import ParkingSchedule
from pipeline.flow.settle import Settler
from pipeline.flow.tally import Tally
from pipeline.flow.work import FileWork, Job, Step
from pipeline.sources.base import Source

log = logging.getLogger("pipeline.run")



class Runner:
    """Drives files from inbox to done/failed. ``run()`` returns the exit status.

    ``work`` is the per-file stage chain; ``store`` the Source (local or S3), whose
    ``watch`` feeds the event fast path (file events, SQS notifications). A *queue-fed*
    source gets names only from its events: hints count in ``--once`` too, and ``--once``
    ends when ``store.drained()``. A source with a ``recover_interval`` is also searched for
    abandoned claims periodically (S3 leases), not just at start. Clocks are injectable.
    """

    def __init__(self, store: Source, journal, work: FileWork, *, workers: int, settle_seconds: float,
                 rescan_seconds: float, once: bool, once_wait: float, grace: float,
                 mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, progress=None, metrics=None):
        self.store, self.journal, self.work = store, journal, work
        self.workers, self.once, self.once_wait, self.grace = workers, once, once_wait, grace
        self.rescan_seconds, self.recover_seconds = rescan_seconds, store.recover_interval
        self.queue_fed = store.queue_fed
        self.mono, self.wall = mono, wall
        self.settler = Settler(settle_seconds, wall=wall, mono=mono)
        self.intake = Intake(store, journal, self.settler, once=once, queue_fed=self.queue_fed, wall=wall)
        self.settle_seconds = settle_seconds
        self.events: queue.Queue = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")
        self.ready: deque[Job] = deque()
        self.later: ParkingSchedule[Job] = ParkingSchedule.of(work, mono, once=once, once_wait=once_wait,
                                                              settle_seconds=settle_seconds)
        self.inflight = 0
        self.held: dict[str, Job] = {}            # every claim we hold, by location
        self.stop_reason: Optional[str] = None
        self.fatal: Optional[str] = None          # credentials refused / Redox unreachable
        self.unreachable_streak = 0
        self.tally = Tally(metrics, progress, wall)

    # -- control -----------------------------------------------------------------------------
    def stop(self, reason: str = "signal") -> None:
        """Ask the loop to stop claiming, finish or release what it holds, and return."""
        self.events.put(("stop", reason))

    def run(self) -> int:
        self.store.prepare()
        watcher = self._start_watch()
        try:
            self._recover()
            self.intake.rescan()
            if self.once and not self.queue_fed:
                self.intake.initial = self.settler.known() | {j.claim.name for j in self.ready}
            self._loop()
        finally:
            if watcher:
                watcher.stop()
            self._shutdown()
        if self.fatal or self.intake.fatal:
            self.fatal = self.fatal or self.intake.fatal
            return Exit.REDOX
        # a service stopped by SIGTERM/SIGINT exits 0; failed (or unfinished)
        # files are the --once run's business, not a reason for systemd to call the stop a failure
        return Exit.FAILED if self.once and (self.counts["failed"] or self.unfinished) else Exit.OK

    @property
    def counts(self) -> dict:
        """How many files went to done/ and failed/ so far."""
        return self.tally.counts

    @property
    def unfinished(self) -> set[str]:
        """--once: files it could not claim (by name) or finish (by location)."""
        return self.later.unfinished | self.intake.unfinished

    def _start_watch(self):
        return self.store.watch(self.events, self.once)

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        next_rescan = self.mono() + self.rescan_seconds
        next_recover = self.mono() + (self.recover_seconds or 0)
        once_deadline = self.mono() + max(10.0, 5 * self.settle_seconds)
        while True:
            self._drain(self._timeout(next_rescan))
            if self.stop_reason or self.fatal or self.intake.fatal:
                return
            if self.mono() >= next_rescan:
                self.intake.rescan()
                next_rescan = self.mono() + self.rescan_seconds
            self.intake.recheck_settling()
            if self.recover_seconds and self.mono() >= next_recover and not self.stop_reason:
                self._recover()
                next_recover = self.mono() + self.recover_seconds
            self._promote_due_retries()
            self._claim_ready()
            self._dispatch()
            self.tally.gauges(in_flight=self.inflight, waiting_retry=len(self.later),
                              held_mtimes=[job.claim.mtime for job in self.held.values()],
                              oldest_inbox=self.intake.oldest_inbox)
            if self.once and self._once_finished(once_deadline):
                return

    def _timeout(self, next_rescan: float) -> float:
        now = self.mono()
        waits = [next_rescan - now]
        retry_in = self.later.next_in()
        if retry_in is not None:
            waits.append(retry_in)
        settle = self.settler.next_check()
        if settle is not None:
            waits.append(settle)
        if self.ready or len(self.later):
            waits.append(max(0.01, self.work.breaker.wait_time()))
        if (self.settler.has_ready() and self.inflight + len(self.ready) < self.workers
                and not self.work.breaker.is_open and not self.stop_reason):
            waits.append(0.0)                  # settled files and a free worker: claim now
        return min(1.0, max(0.0, min(waits)))

    def _drain(self, timeout: float) -> None:
        """Handle every queued event; block up to ``timeout`` for the first one."""
        try:
            event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "step":
            self.inflight -= 1
            self._on_step(event[1], event[2])
        elif kind == "hint":
            self.intake.hint(event[1])
        elif kind == "stop":
            self.stop_reason = event[1]
        elif kind == "fatal":                  # the source refused our credentials
            self.fatal = event[1]

    def _once_finished(self, deadline: float) -> bool:
        if self.inflight or self.ready or self.settler.has_ready():
            return False
        if self.queue_fed and not self.store.drained():
            return False
        if self.settler.pending_count() and self.mono() < deadline:
            return False                       # a file present at start is still being written
        return not self.later.any_due_within(self.once_wait)

    # -- claim -------------------------------------------------------------------------------
    def _claim_ready(self) -> None:
        """Claim while a worker would be free for it, Redox is not failing for everyone, and
        no stop was asked for: unclaimed files stay in the inbox for other processes."""
        while (self.inflight + len(self.ready) < self.workers and not self.work.breaker.is_open
               and not self.stop_reason and not self.fatal):
            claim = self.intake.claim_next()
            if claim is None:
                return
            job = Job(claim)
            self.held[claim.location] = job
            self.ready.append(job)
            self.tally.claimed()

    def _dispatch(self) -> None:
        while self.ready and self.inflight < self.workers:
            if not self.work.breaker.allow():
                return
            job = self.ready.popleft()
            self.inflight += 1
            self.pool.submit(self._work, job)

    def _work(self, job: Job) -> None:
        try:
            step = self.work.run(job)
        except Exception as exc:   # a bug must not stall the service: keep the file claimed
            log.exception("unexpected error", extra={"file": job.claim.name})
            step = Step("stuck", error=f"unexpected {exc.__class__.__name__}")
        self.events.put(("step", job, step))

    # -- results -----------------------------------------------------------------------------
    def _on_step(self, job: Job, step: Step) -> None:
        name = job.claim.name
        if step.kind != "stuck":
            self.later.progressed(job.claim.location)
        if step.kind == "finished":
            self.held.pop(job.claim.location, None)
            self.unreachable_streak = 0
            self.tally.finished(job, step)
        elif step.kind == "retry":
            self.unreachable_streak = self.unreachable_streak + 1 if step.unreachable else 0
            if (self.once and not self.tally.delivered_any
                    and self.unreachable_streak >= self.work.breaker.threshold):
                self.fatal = "Redox could not be reached"
            self._schedule(job, step.delay, step.error)
            self.tally.retried()
        elif step.kind == "wait":                # ordering: an earlier file of its key goes first
            self.later.park(job, step.delay)
        elif step.kind == "stuck":
            self._on_stuck(job, step.error)
        elif step.kind == "auth":
            self.fatal = step.error
            self.ready.appendleft(job)          # released with the rest below
        elif step.kind == "lost":
            self.held.pop(job.claim.location, None)
            log.warning("claimed file vanished before it was finished", extra={"file": name})
        elif step.kind == "released":
            self.held.pop(job.claim.location, None)
            log.warning("returned to the inbox, where it is left alone", extra={
                "file": name, "error": step.error, "path": step.dest})
        self.tally.stepped()

    def _on_stuck(self, job: Job, error: Optional[str]) -> None:
        """Could not read it consistently or finish it: it stays claimed and is tried again
        later (the schedule backs off). A --once run that must give up puts it back in the
        inbox; the journal keeps an accepted outcome, so the next run finishes it without
        sending it again, and the exit status is 1."""
        delay = self.later.stuck(job.claim.location)
        if delay is None:
            log.error("could not finish; giving up for this run",
                      extra={"file": job.claim.name, "error": error})
            self._journal(self.journal.schedule, job, self.wall())   # due at the next run
            self._release(job)
            return
        self._schedule(job, delay, error)

    def _journal(self, method, job: Job, *args) -> None:
        """A journal write from the loop itself: a full disk must not stop the loop."""
        if job.record is None:
            return
        try:
            method(job.record.claim_id, *args)
        except StorageError as exc:
            log.error("cannot update the journal", extra={"file": job.claim.name, "error": str(exc)})

    def _schedule(self, job: Job, delay: float, error: Optional[str]) -> None:
        self._journal(self.journal.schedule, job, self.wall() + delay)
        self.later.add(job, delay)
        log.info("retry scheduled", extra={"file": job.claim.name, "delay": round(delay, 3),
                                           "attempt": job.record.attempts if job.record else 0,
                                           "error": error})

    def _promote_due_retries(self) -> None:
        if not self.stop_reason:
            self.ready.extend(self.later.due())

    # -- recovery and shutdown ----------------------------------------------------------------
    def _recover(self) -> None:
        """Take over abandoned claims and complete journal rows a crash left open."""
        try:
            recovery.complete_journal(self.store, self.journal)
            claims = recovery.adopt(self.store)
        except AuthError as exc:
            self.fatal = str(exc)
            return
        except StorageError as exc:
            log.error("cannot look for abandoned claims; trying again", extra={"error": str(exc)})
            return
        for claim in claims:
            job = Job(claim)
            self.held[claim.location] = job
            self.ready.append(job)

    def _shutdown(self) -> None:
        """Let in-flight work finish within the grace period; release everything else."""
        deadline = self.mono() + self.grace
        while self.inflight and self.mono() < deadline:
            self._drain(min(0.5, max(0.0, deadline - self.mono())))
        for job in list(self.ready) + self.later.take_all():
            self._release(job)
        self.ready.clear()
        self.pool.shutdown(wait=not self.inflight, cancel_futures=True)
        if self.inflight:
            log.warning("stopping with requests still in flight; their files stay claimed and "
                        "are recovered at the next start", extra={"in_flight": self.inflight})
        else:
            self.store.close()

    def _release(self, job: Job) -> None:
        try:
            where = self.store.release(job.claim)
        except (ClaimLost, StorageError, AuthError) as exc:
            log.error("could not release a claimed file; it is recovered at the next start",
                      extra={"file": job.claim.name, "error": str(exc)})
            return
        self.held.pop(job.claim.location, None)
        self._journal(self.journal.released, job, self.wall())   # attempts and schedule go with it
        log.info("released to the inbox", extra={"file": job.claim.name, "path": where})
