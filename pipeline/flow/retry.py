"""Retry policy and circuit breaker: plain values and pure functions (urllib3's Retry as model).

The runner asks the policy *when* to try again and schedules it; nothing here sleeps.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` requests; exponential backoff with full jitter, capped.

    ``delay(n)`` is the wait after the n-th failed attempt: uniform in
    ``[0, min(cap, initial * 2**(n-1))]`` (full jitter spreads a thundering herd). A server's
    Retry-After is a floor, capped at ``cap``.
    """
    max_attempts: int = 10
    initial: float = 1.0
    cap: float = 300.0

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def delay(self, attempt: int, rand: float, retry_after: Optional[float] = None) -> float:
        # 2**1024 no longer converts to a float: past 2**64 every real cap is reached anyway
        ceiling = min(self.cap, self.initial * (2 ** min(64, max(0, attempt - 1))))
        wait = rand * ceiling
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.cap))
        return wait


class CircuitBreaker:
    """Pauses new attempts while Redox is failing for everyone.

    After ``threshold`` transient failures in a row (across files) it opens for a cooldown
    that doubles up to ``max_cooldown`` (jittered by ``rand``); then one probe attempt is let
    through (half-open): a success closes it, a failure opens it again. Whoever was let through
    as the probe must end it: with a verdict (:meth:`record_success`, :meth:`record_failure`)
    or, when its step ended without asking Redox anything (a finish from the journal, a file
    rejected before sending), with :meth:`settle`, so the next probe can go. Thread-safe; the
    clock and the jitter are injectable.
    """

    def __init__(self, threshold: int, cooldown: float, max_cooldown: float,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random):
        self.threshold, self.base, self.max_cooldown, self.clock = threshold, cooldown, max_cooldown, clock
        self.rand = rand
        self._failures = 0
        self._open_until = 0.0
        self._cooldown = cooldown
        self._probe: Optional[object] = None      # who holds the half-open probe, if anyone
        self._lock = threading.Lock()

    def allow(self, who: object = True) -> bool:
        """May an attempt by ``who`` start now? While open: no. Half-open: only one probe at a
        time, held by ``who`` until a verdict or :meth:`settle`."""
        with self._lock:
            if self._failures < self.threshold:
                return True
            if self.clock() < self._open_until or self._probe is not None:
                return False
            self._probe = who
            return True

    def settle(self, who: object) -> None:
        """``who``'s step is over: if it held the probe and gave no verdict, free the probe."""
        with self._lock:
            if self._probe is who:
                self._probe = None

    def wait_time(self) -> float:
        """Seconds until an attempt may start (0 when closed)."""
        with self._lock:
            if self._failures < self.threshold:
                return 0.0
            return max(0.0, self._open_until - self.clock())

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._failures >= self.threshold

    def record_success(self) -> None:
        with self._lock:
            self._failures, self._cooldown, self._probe = 0, self.base, None

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probe = None
            if self._failures >= self.threshold:
                self._open_until = self.clock() + self._cooldown * (0.5 + self.rand() / 2)
                self._cooldown = min(self.max_cooldown, max(self._cooldown * 2, 0.05))
