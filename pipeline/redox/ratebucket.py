"""One process's own rate-limit budget, in memory (LocalBucket), and what every budget offers.

A request may leave once ``1/rate`` has passed since the last one and fewer than ``rate`` left
in the last second (MARGIN later, for the way to Redox); a 429's pause holds everyone back. The
host-wide budget (sharedbucket.py) keeps the same record in a file, and falls back to this one
when the file cannot be used.
"""

from __future__ import annotations

import collections
import math
import threading
from typing import Callable, Protocol

MARGIN = 0.03   # seconds: departure-to-arrival jitter on a loaded machine


class Paused(Exception):
    """Everyone is held back (a 429's Retry-After) for ``seconds`` more, longer than the caller
    was willing to wait. Nothing was sent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"paused for {seconds:.3f} s more")


class Bucket(Protocol):
    """A record of departures that says when the next request may leave."""

    def take(self, patience: float = math.inf) -> float: ...
    def hold_until(self, seconds: float) -> None: ...
    def restamp(self, late_by: float) -> None: ...


class LocalBucket:
    """One process's own record of its departures, in memory."""

    def __init__(self, per_second: float, clock: Callable[[], float], max_pause: float):
        self.per_second, self.clock, self.max_pause = per_second, clock, max_pause
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._window: collections.deque[float] = collections.deque(
            maxlen=window_size(per_second) if per_second > 0 else 1)
        self._next = -math.inf
        self._paused_until = -math.inf
        self._lock = threading.Lock()
        self._taken = 0                      # departures so far
        self._mine = threading.local()       # the departure number this thread took last

    def restamp(self, late_by: float) -> None:
        """This thread's last departure left ``late_by`` seconds later than counted: count it
        so (only ever later, so the window's guard only ever holds others back longer)."""
        with self._lock:
            n = getattr(self._mine, "n", None)
            index = None if n is None else n - (self._taken - len(self._window))
            if index is not None and 0 <= index < len(self._window) and late_by > 0:
                self._window[index] += late_by

    def take(self, patience: float = math.inf) -> float:
        """0 when a request may leave now (and it is counted as leaving now), else how long to
        wait before asking again; Paused when a pause has longer than ``patience`` to go."""
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
                    self._mine.n = self._taken
                    self._taken += 1
                return 0.0
            return earliest - now

    def hold_until(self, seconds: float) -> None:
        """Nobody leaves for ``seconds`` from now (already clamped by the caller)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)


def window_size(per_second: float) -> int:
    """How many departures one second may hold: the limit, rounded down, at least one."""
    return max(1, math.floor(per_second))
