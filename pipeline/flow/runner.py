"""The runner: one loop that calls the stages in order for every file.

    discover ──> claim ──> [worker thread: read + check ──> route ──> deliver ──> finish]

The loop alone decides what to claim, schedules and releases; workers do the blocking work
and report a :class:`~pipeline.work.Step` back through one event queue (watchdog hints, the
listing's progress and, for a source whose claims cost round trips, claims made on worker
threads arrive on it too), so a file waiting for a retry holds no worker and one slow file
never blocks the others. How many files are in flight (claimed, waiting for a worker or being
worked on) follows ``concurrency.target()`` (concurrency.py): with ``workers: auto`` enough to
send at the rate limit at Redox's own latency, with a number that number. The listing runs on
a thread of its own and files are claimed from what it has found so far (intake.py), except
with ordering on, where the first full listing comes before any claim (a file's turn needs
every earlier file of its key seen first).
``--once`` takes the files present at start; the service keeps watching until ``stop()``.
A ``--once`` run that makes no progress for ``once_wait`` seconds while Redox keeps failing
(pulse.py) stops sending, lets requests in flight end (at most one request timeout) and puts
everything back in the inbox with its schedule in the journal.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Union

from pipeline.errors import AuthError, StorageError
from pipeline.exits import Exit
from pipeline.flow import claims, recovery
from pipeline.flow.concurrency import Concurrency
from pipeline.flow.intake import Intake
from pipeline.flow.job import Job
from pipeline.flow.parking import ParkingSchedule
from pipeline.flow.pulse import Pulse
from pipeline.flow.settle import Settler
from pipeline.flow.shutdown import shutdown
from pipeline.flow.steps import on_step
from pipeline.flow.tally import Tally
from pipeline.flow.work import FileWork
from pipeline.journal import Journal
from pipeline.sources.base import Source

log = logging.getLogger("pipeline.run")


class Runner:
    """Drives files from inbox to done/failed. ``run()`` returns the exit status.

    ``work`` is the per-file stage chain; ``store`` the Source (local or S3), whose
    ``watch`` feeds the event fast path (file events, SQS notifications). A *queue-fed*
    source gets names only from its events: hints count in ``--once`` too, and ``--once``
    ends when ``store.drained()``. A source with a ``recover_interval`` is also searched for
    abandoned claims periodically (S3 leases), not just at start. Clocks are injectable.

    ``workers``: a :class:`Concurrency` controller, or a fixed number of files in flight.
    ``pulse`` (shared with the Redox client's observe hook and the health endpoint) records
    what the loop and Redox did; ``request_timeout`` bounds how long a --once run that gave up
    on Redox waits for requests in flight; ``on_turn`` is called at every loop turn (the
    service's watchdog ping).
    """

    def __init__(self, store: Source, journal: Journal, work: FileWork, *, workers: Union[int, Concurrency],
                 settle_seconds: float,
                 rescan_seconds: float, once: bool, once_wait: float, grace: float,
                 mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, progress=None, metrics=None,
                 pulse: Optional[Pulse] = None, request_timeout: float = 130.0,
                 on_turn: Optional[Callable[[], None]] = None):
        self.store, self.journal, self.work = store, journal, work
        self.concurrency = (workers if isinstance(workers, Concurrency)
                            else Concurrency(0, ceiling=workers, fixed=True))
        self.once, self.once_wait, self.grace = once, once_wait, grace
        self.rescan_seconds, self.recover_seconds = rescan_seconds, store.recover_interval
        self.queue_fed = store.queue_fed
        self.mono, self.wall = mono, wall
        self.settler = Settler(settle_seconds, wall=wall, mono=mono)
        self.events: queue.Queue = queue.Queue()
        self.intake = Intake(store, journal, self.settler, once=once, queue_fed=self.queue_fed, wall=wall,
                             wake=self.events)
        self.settle_seconds = settle_seconds
        # threads start as they are needed: the ceiling is what the target may reach
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency.ceiling, thread_name_prefix="worker")
        self.parallel_claims = store.parallel_claims and store.claim_hooks is None
        self.ordered = store.claim_hooks is not None     # claims wait for the first full listing
        self.claiming = 0                         # claims under way on worker threads
        store.follow(self.concurrency.target)
        self.ready: deque[Job] = deque()
        self.later: ParkingSchedule[Job] = ParkingSchedule.of(work, mono, once=once, once_wait=once_wait,
                                                              settle_seconds=settle_seconds)
        self.inflight = 0
        self.held: dict[str, Job] = {}            # every claim we hold, by location
        self.stop_reason: Optional[str] = None
        self.stop_status: Optional[int] = None    # the exit status a stop asked for
        self.fatal: Optional[str] = None          # credentials refused / Redox unreachable
        self.pulse = pulse or Pulse(mono)
        self.request_timeout = request_timeout
        self.on_turn = on_turn
        self.winding_since: Optional[float] = None   # --once: stalled, waiting for in-flight
        self.tally = Tally(metrics, progress, wall)

    # -- control -----------------------------------------------------------------------------
    def stop(self, reason: str = "signal", status: Optional[int] = None) -> None:
        """Ask the loop to stop claiming, finish or release what it holds, and return;
        ``run()`` then returns ``status`` when given (a --once run stopped by a signal)."""
        self.events.put(("stop", reason, status))

    def run(self) -> int:
        self.store.prepare()
        watcher = self._start_watch()
        try:
            if not self.ordered:
                self.intake.start_pass()       # the listing runs while abandoned claims are sought
            self._recover()
            self.intake.also_initial(job.claim.name for job in self.ready)
            if self.ordered:
                self.intake.rescan()
            self._loop()
            if (self.once and not self.fatal and not self.stop_reason and len(self.later)
                    and self.pulse.in_outage()):
                # done for now, but what is left waits for a Redox that answered only errors
                self.fatal = self.pulse.outage_text()
        finally:
            if watcher:
                watcher.stop()
            self.intake.stop()
            # a run that gave up on Redox has already waited for its requests in flight
            shutdown(self, 0.0 if self.winding_since is not None else self.grace)
        if self.fatal or self.intake.fatal:
            self.fatal = self.fatal or self.intake.fatal
            return Exit.REDOX
        if self.stop_status is not None:
            return self.stop_status
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
            self.drain(self._timeout(next_rescan))
            if self.stop_reason or self.fatal or self.intake.fatal:
                return
            if self.once and self._gave_up_on_redox():
                return
            self.intake.advance()
            if self.intake.scanning:
                next_rescan = self.mono() + self.rescan_seconds
            elif self.mono() >= next_rescan:
                self.intake.start_pass()
                next_rescan = self.mono() + self.rescan_seconds
            self.intake.recheck_settling()
            if self.recover_seconds and self.mono() >= next_recover and not self.stop_reason:
                self._recover()
                next_recover = self.mono() + self.recover_seconds
            self._promote_due_retries()
            claims.claim_ready(self)
            claims.dispatch(self)
            self.tally.gauges(in_flight=self.inflight, waiting_retry=len(self.later),
                              held_mtimes=[job.claim.mtime for job in self.held.values()],
                              oldest_inbox=self.intake.oldest_waiting)
            self.turn_hook()
            if self.once and self._once_finished(once_deadline):
                return

    def turn_hook(self) -> None:
        """The loop is alive: tell the pulse (and the watchdog) what it holds."""
        self.pulse.turned(busy=bool(self.held or self.inflight or self.claiming),
                          breaker_open=self.work.breaker.is_open)
        if self.on_turn:
            self.on_turn()

    def _gave_up_on_redox(self) -> bool:
        """--once: no progress for ``once_wait`` seconds while Redox failed. Stop starting
        anything; once the requests in flight have ended (or one request timeout has passed),
        end the run: exit 3 when Redox was down (5xx, no answer), the usual status when it only
        asked us to wait (429). Progress meanwhile (a request in flight succeeds) lifts it."""
        if not self.pulse.stalled(self.once_wait):
            self.winding_since = None
            return False
        now = self.mono()
        if self.winding_since is None:
            self.winding_since = now
            log.warning("Redox keeps failing; no new attempts in this run", extra={
                "in_flight": self.inflight, "error": self.pulse.snapshot().last_error})
        if self.inflight and now - self.winding_since < self.request_timeout:
            return False
        if self.pulse.in_outage():
            self.fatal = self.pulse.outage_text()
        return True

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
        if (self.settler.has_ready() and self._room() > 0
                and not self.work.breaker.is_open and not self.stop_reason):
            waits.append(0.0)                  # settled files and a free worker: claim now
        return min(1.0, max(0.0, min(waits)))

    def drain(self, timeout: float) -> None:
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
            on_step(self, event[1], event[2])
        elif kind == "claimed":
            claims.claimed(self, event[1], event[2])
        elif kind == "hint":
            self.intake.hint(event[1])
        elif kind == "stop":
            if self.stop_reason is None:
                log.info(f"stopping: draining {self.inflight} in flight",
                         extra={"in_flight": self.inflight, "reason": event[1]})
            self.stop_reason, self.stop_status = event[1], event[2]
        elif kind == "fatal":                  # the source refused our credentials
            self.fatal = event[1]

    def _once_finished(self, deadline: float) -> bool:
        if self.inflight or self.claiming or self.ready or self.settler.has_ready():
            return False
        if self.intake.scanning or not self.intake.passes:
            return False                       # the first listing is not over
        if self.queue_fed and not self.store.drained():
            return False
        if self.settler.pending_count() and self.mono() < deadline:
            return False                       # a file present at start is still being written
        return not self.later.any_due_within(self.once_wait)

    # -- claim -------------------------------------------------------------------------------
    def _claim_ready(self) -> None:
        claims.claim_ready(self)

    def _room(self) -> int:
        return claims.room(self)

    def _promote_due_retries(self) -> None:
        if not self.stop_reason:
            self.ready.extend(self.later.due())

    # -- recovery and shutdown ----------------------------------------------------------------
    def _recover(self) -> None:
        """Take over abandoned claims and complete journal rows a crash left open."""
        try:
            recovery.complete_journal(self.store, self.journal)
            adopted = recovery.adopt(self.store)
        except AuthError as exc:
            self.fatal = str(exc)
            return
        except StorageError as exc:
            log.error("cannot look for abandoned claims; trying again", extra={"error": str(exc)})
            return
        for claim in adopted:
            job = Job(claim)
            self.held[claim.location] = job
            self.ready.append(job)
