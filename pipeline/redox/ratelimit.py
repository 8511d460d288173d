"""A shared limiter that keeps Redox requests under ``redox.max_requests_per_second``.

Redox allows 7,500 requests per 5-minute window per IP (about 25/s). Requests are spaced evenly
at 1/rate and, as a second guard, never more than ``rate`` fall in any one-second window, so the
busiest second never exceeds the limit. A 429's Retry-After pauses everyone, for at most
``max_pause`` seconds: whatever a reply says, it cannot stop the pipeline for longer than the
retry policy's own longest wait.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

MARGIN = 0.03   # seconds: departure-to-arrival jitter on a loaded machine


class Paused(Exception):
    """Everyone is held back (a 429's Retry-After) for ``seconds`` more, longer than the caller
    was willing to wait. Nothing was sent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"paused for {seconds:.3f} s more")


class RateLimiter:
    """``acquire()`` blocks the calling worker until it may send. ``per_second`` 0 = no limit;
    ``max_pause``: the longest :meth:`pause_for` holds everyone back (seconds)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_pause: float = 300.0):
        self.per_second = per_second
        self.max_pause = max(0.0, max_pause)
        self.clock, self.sleep = clock, sleep
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._window: collections.deque[float] = collections.deque(
            maxlen=max(1, math.floor(per_second)) if per_second > 0 else 1)
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, patience: float = math.inf) -> float:
        """Wait until a request may leave now, and count it as leaving now. Returns the wait.

        ``patience``: the longest pause (:meth:`pause_for`) the caller will sit out; a longer
        one raises :class:`Paused` at once (the spacing of the rate limit is always waited for).

        The window holds actual departure times, not planned ones: a worker that wakes late
        must not let the next one leave early. MARGIN absorbs the few milliseconds between
        leaving here and arriving at Redox.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                paused = self._paused_until - now
                if paused > patience:
                    raise Paused(paused)
                earliest = max(self._next, self._paused_until)
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
        """Hold every request back for ``seconds`` (a 429 with Retry-After), clamped to
        [0, max_pause]; NaN pauses nobody."""
        if math.isnan(seconds):
            return
        seconds = min(self.max_pause, max(0.0, seconds))
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)
