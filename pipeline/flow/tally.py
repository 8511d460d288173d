"""What the run has finished so far: counts, one log line per outcome, metrics and progress.

The runner hands every finished file to :meth:`Tally.finished`; reporting lives here so the loop
stays about scheduling. Log lines carry names, hashes, Log IDs and reasons, never content. A
file whose bytes were already delivered (dedupe) is logged as ``skipped: already delivered``
with ``duplicate_of``, not as ``done``, though it too goes to done/.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from pipeline.flow.job import Job, Step

log = logging.getLogger("pipeline.run")


class Tally:
    """``metrics`` (optional) gets counters and gauges; ``progress`` (optional) the counts
    after every step."""

    def __init__(self, metrics=None, progress: Optional[Callable[[dict], None]] = None,
                 wall: Callable[[], float] = time.time):
        self.metrics, self.progress, self.wall = metrics, progress, wall
        self.counts = {"done": 0, "failed": 0}
        self.delivered_any = False
        self.duplicates = 0            # of the done ones: bytes already delivered, not sent again
        self.retries = 0               # retries scheduled
        self.releases = 0              # claimed files put back in the inbox
        self.started = wall()

    def summary(self) -> dict:
        """The run's totals so far, for its last log line (``duration`` in seconds)."""
        return {"done": self.counts["done"], "failed": self.counts["failed"],
                "duplicates": self.duplicates, "retried": self.retries, "released": self.releases,
                "duration": round(max(0.0, self.wall() - self.started), 3)}

    def finished(self, job: Job, step: Step) -> None:
        """One file reached done/ or failed/."""
        assert step.status in self.counts
        self.counts[step.status] += 1
        self.delivered_any = self.delivered_any or step.status == "done"
        record = job.record
        fields = {"file": job.claim.name, "status": step.status, "dest": step.dest,
                  "sha256": (record.sha256 or "")[:12] if record else None,
                  "attempt": record.attempts if record else 0,
                  "log_ids": [entry.get("ID") for entry in record.logs] if record else [],
                  "duration": round(max(0.0, self.wall() - job.claim.claimed_at), 3)}
        if step.status == "failed":
            log.warning("failed", extra=dict(fields, error=step.error))
        elif record is not None and record.duplicate_of:
            # dedupe: not sent at all; "done" would read as a delivery
            self.duplicates += 1
            log.info("skipped: already delivered", extra=dict(fields, duplicate_of=record.duplicate_of))
        else:
            log.info("done", extra=fields)
        if self.metrics:
            self.metrics.finished(step.status, record.reason_kind if record else None)

    def stepped(self) -> None:
        """After every step: the progress line (a terminal --once run)."""
        if self.progress:
            self.progress(self.counts)

    def claimed(self) -> None:
        if self.metrics:
            self.metrics.claimed()

    def retried(self) -> None:
        self.retries += 1
        if self.metrics:
            self.metrics.retried()

    def released(self) -> None:
        self.releases += 1

    def gauges(self, *, in_flight: int, waiting_retry: int, held_mtimes: list[float],
               oldest_inbox: Optional[float]) -> None:
        """In flight, waiting for a retry, and the oldest file not finished yet (inbox as of
        the last scan, or held by us)."""
        if not self.metrics:
            return
        candidates = held_mtimes + ([oldest_inbox] if oldest_inbox is not None else [])
        self.metrics.gauges(in_flight=in_flight, waiting_retry=waiting_retry,
                            oldest_mtime=min(candidates) if candidates else None)
