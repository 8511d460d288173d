"""What the runner's helpers (claims.py, steps.py, shutdown.py) see of the loop they serve.

The runner (runner.py) owns the loop and calls these helpers with itself; they know it only as
a :class:`Loop`, so they sit below the runner and never import it. Everything a helper reads or
changes on the runner is declared here, and mypy holds the runner to it.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Protocol

from pipeline.errors import StorageError
from pipeline.flow.concurrency import Concurrency
from pipeline.flow.intake import Intake
from pipeline.flow.job import Job, Step
from pipeline.flow.parking import ParkingSchedule
from pipeline.flow.pulse import Pulse
from pipeline.flow.retry import CircuitBreaker
from pipeline.flow.tally import Tally
from pipeline.journal import Journal
from pipeline.sources.base import Source

log = logging.getLogger("pipeline.run")


class Work(Protocol):
    """What the loop needs of the per-file stage chain (work.FileWork)."""
    breaker: CircuitBreaker

    def run(self, job: Job) -> Step: ...


class Loop(Protocol):
    """The runner's state and the two loop calls its helpers make (runner.Runner)."""
    store: Source
    journal: Journal
    concurrency: Concurrency
    intake: Intake
    pulse: Pulse
    tally: Tally
    pool: ThreadPoolExecutor
    events: queue.Queue
    once: bool
    parallel_claims: bool                  # claims are made on worker threads
    ready: deque[Job]                      # claimed, waiting for a worker
    later: ParkingSchedule[Job]            # claimed, waiting for a retry or their turn
    held: dict[str, Job]                   # every claim held, by location
    inflight: int
    claiming: int
    stop_reason: Optional[str]
    fatal: Optional[str]
    winding_since: Optional[float]
    mono: Callable[[], float]
    wall: Callable[[], float]

    @property
    def work(self) -> Work: ...

    def turn_hook(self) -> None: ...

    def drain(self, timeout: float) -> None: ...


def journal_write(loop: Loop, method: Callable[..., Any], job: Job, *args: Any) -> None:
    """A journal write from the loop itself: a full disk must not stop the loop (the pulse
    remembers it for the health check)."""
    if job.record is None:
        return
    try:
        method(job.record.claim_id, *args)
    except StorageError as exc:
        loop.pulse.storage_failed(f"journal: {exc}")
        log.error("cannot update the journal", extra={"file": job.claim.name, "error": str(exc)})
