"""A shared limiter that keeps Redox requests under ``redox.max_requests_per_second``.

redox-api.md: Redox allows 7,500 requests per 5-minute window per IP (about 25/s). Requests are
spaced evenly at 1/rate and, as a second guard, never more than ``rate`` fall in any one-second
window, so the busiest second never exceeds the limit. A 429's Retry-After pauses everyone.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

MARGIN = 0.03   # seconds: departure-to-arrival jitter on a loaded machine


class RateLimiter:
    """``acquire()`` blocks the calling worker until it may send. ``per_second`` 0 = no limit."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.per_second = per_second
        self.clock, self.sleep = clock, sleep
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._window: collections.deque[float] = collections.deque(
            maxlen=max(1, math.floor(per_second)) if per_second > 0 else 1)
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a request may leave now, and count it as leaving now. Returns the wait.

        The window holds actual departure times, not planned ones: a worker that wakes late
        must not let the next one leave early. MARGIN absorbs the few milliseconds between
        leaving here and arriving at Redox.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                earliest = self._next
                if self.per_second > 0 and len(self._window) == self._window.maxlen:
                    earliest = max(earliest, self._window[0] + 1.0 + MARGIN)
                if now >= earliest:
                    if self.per_second > 0:
                        self._window.append(now)
                        self._next = now + self._interval
                    return waited
                wait = earliest - now
            self.sleep(wait)
            waited += wait

    def pause_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a 429 with Retry-After)."""
        with self._lock:
            self._next = max(self._next, self.clock() + seconds)
