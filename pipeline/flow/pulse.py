"""The run's pulse: what the loop and Redox have been doing lately, in one thread-safe place.

The runner reports every loop turn, every finished file, every retry and storage trouble;
the Redox client reports every answer it got (through the ``observe`` hook the metrics use
too). Two readers judge it:

- a ``--once`` run asks :meth:`Pulse.stalled`: has it made no progress for ``once_wait``
  seconds while Redox kept failing? Then it winds down (exit 3) instead of waiting for a Redox
  that answers nothing but errors;
- the service's ``/healthz`` (pipeline.service.health) reads :meth:`Pulse.snapshot`.

*Progress* is a file that reached done/ or failed/, or any Redox answer that is not a transient
failure (2xx, or a 4xx other than 429: Redox is up and judging). An *outage failure* is a 5xx,
no answer at all (timeout, dropped or refused connection) or an unreachable auth endpoint: a
Redox that is down. A 429 is neither: Redox is up but asks us to wait. Pure bookkeeping; the
clocks are injectable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Snapshot:
    """The pulse at one moment; ages in seconds (None: never happened)."""
    now: float                              # monotonic
    since_turn: float                       # since the loop last turned
    since_answer: Optional[float]           # since Redox last answered anything but an outage failure
    since_outage_failure: Optional[float]   # since the last 5xx / no answer
    breaker_open_for: Optional[float]       # the circuit breaker has been open this long
    storage_error: Optional[str]            # the last storage failure, until a file finishes again
    refused: Optional[str]                  # the credentials were refused (the run is stopping)
    busy: bool                              # files claimed, in flight or waiting for a retry
    last_error: Optional[str]               # the last transient failure's text


class Pulse:
    """See the module docstring. ``mono`` is a monotonic clock."""

    def __init__(self, mono: Callable[[], float] = time.monotonic):
        self.mono = mono
        self._lock = threading.Lock()
        now = mono()
        self._turn = now
        self._progress = now            # the start of the run counts as progress
        self._answer: Optional[float] = None
        self._outage_at: Optional[float] = None
        self._failures = 0              # transient failures since the last progress
        self._outage_failures = 0       # ... of which outage failures
        self._unreachable = 0           # unreachable in a row (nothing answered at all)
        self._breaker_since: Optional[float] = None
        self._storage: Optional[str] = None
        self._refused: Optional[str] = None
        self._busy = False
        self._last_error: Optional[str] = None

    # -- what the Redox client saw (worker threads) -------------------------------------------
    def answered(self, status: Optional[int]) -> None:
        """One SEND or upload ended with HTTP ``status`` (None: no answer at all)."""
        now = self.mono()
        with self._lock:
            if status is None or status >= 500:
                self._outage_at = now
                self._outage_failures += 1
            elif status != 429:
                self._answer = now
                self._progressed(now)

    def observer(self, then: Optional[Callable[..., None]] = None) -> Callable[..., None]:
        """An ``observe(kind, status=, elapsed=)`` hook (what FileWork and Transfer call after
        each request) that feeds this pulse, then ``then`` (the metrics) if given."""
        def observe(kind: str, *, status: Optional[int] = None, elapsed: Optional[float] = None) -> None:
            self.answered(status)
            if then is not None:
                then(kind, status=status, elapsed=elapsed)
        return observe

    # -- what the loop saw ----------------------------------------------------------------------
    def turned(self, *, busy: bool, breaker_open: bool) -> None:
        """One loop turn: ``busy`` when files are claimed, in flight or waiting for a retry."""
        now = self.mono()
        with self._lock:
            self._turn, self._busy = now, busy
            if not breaker_open:
                self._breaker_since = None
            elif self._breaker_since is None:
                self._breaker_since = now

    def finished(self) -> None:
        """A file reached done/ or failed/: progress, and the storage works again."""
        with self._lock:
            self._storage = None
            self._progressed(self.mono())

    def retried(self, error: Optional[str], *, unreachable: bool) -> None:
        """A transient failure: the file waits for a retry. ``unreachable``: nothing answered
        (connection refused, DNS, the auth endpoint down)."""
        now = self.mono()
        with self._lock:
            self._failures += 1
            self._last_error = error
            if unreachable:
                self._unreachable += 1
                self._outage_failures += 1
                self._outage_at = now
            else:
                self._unreachable = 0

    def storage_failed(self, error: str) -> None:
        """A journal write or a finish failed (a folder missing, unwritable or full)."""
        with self._lock:
            self._storage = error

    def refused(self, reason: str) -> None:
        """Redox (or the source) refused the credentials."""
        with self._lock:
            self._refused = reason

    def _progressed(self, now: float) -> None:
        self._progress = now
        self._failures = self._outage_failures = self._unreachable = 0

    # -- judgements -----------------------------------------------------------------------------
    def stalled(self, once_wait: float) -> bool:
        """No progress for ``once_wait`` seconds, and Redox failed (transiently) meanwhile."""
        with self._lock:
            return self._failures > 0 and self.mono() - self._progress >= once_wait

    def unreachable_streak(self) -> int:
        """Transient failures in a row where nothing answered at all."""
        with self._lock:
            return self._unreachable

    def in_outage(self) -> bool:
        """Since the last progress, Redox answered with 5xx, not at all, or was unreachable."""
        with self._lock:
            return self._outage_failures > 0

    def outage_text(self) -> str:
        """Why a --once run gives up on Redox, for its last log line."""
        with self._lock:
            quiet = self.mono() - self._progress
            last = f" (last: {self._last_error})" if self._last_error else ""
        return (f"Redox answered nothing but server errors or timeouts, or could not be reached, "
                f"for {quiet:.0f}s{last}")

    def snapshot(self) -> Snapshot:
        now = self.mono()
        with self._lock:
            return Snapshot(
                now=now, since_turn=now - self._turn,
                since_answer=None if self._answer is None else now - self._answer,
                since_outage_failure=None if self._outage_at is None else now - self._outage_at,
                breaker_open_for=None if self._breaker_since is None else now - self._breaker_since,
                storage_error=self._storage, refused=self._refused, busy=self._busy,
                last_error=self._last_error)
