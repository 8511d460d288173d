"""The runner's book of later work: retries waiting for their time, files stuck on storage, and
what a ``--once`` run could not finish.

A retry is scheduled, never slept: the runner asks :meth:`Schedule.due` each turn, so a file
waiting for its retry holds no worker. A file that could not be read consistently or finished
(a folder missing, unwritable or full) is *stuck*: it is tried again, backing off to once a
minute, so a service recovers by itself once the folder is fixed; a ``--once`` run gives such a
file up after ``once_wait`` seconds and counts it as unfinished (exit 1). Pure bookkeeping:
no I/O, the clock injected.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")
STUCK_MAX_DELAY = 60.0


class Schedule(Generic[T]):
    """Jobs (anything) waiting for a monotonic time; stuck files by their location."""

    def __init__(self, mono: Callable[[], float], *, once: bool, once_wait: float, settle_seconds: float):
        self.mono, self.once, self.once_wait, self.settle_seconds = mono, once, once_wait, settle_seconds
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._stuck: dict[str, tuple[float, int]] = {}   # location → (first stuck at, times)
        self.unfinished: set[str] = set()                 # --once: locations it could not finish

    # -- retries -----------------------------------------------------------------------------------
    def add(self, job: T, delay: float) -> None:
        """``job`` is due ``delay`` seconds from now."""
        heapq.heappush(self._heap, (self.mono() + max(0.0, delay), next(self._seq), job))

    def due(self) -> Iterator[T]:
        """The jobs whose time has come, earliest first (each handed out once)."""
        now = self.mono()
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)[2]

    def next_in(self) -> Optional[float]:
        """Seconds until the earliest job is due (negative when overdue), or None."""
        return self._heap[0][0] - self.mono() if self._heap else None

    def any_due_within(self, seconds: float) -> bool:
        horizon = self.mono() + seconds
        return any(due <= horizon for due, _, _ in self._heap)

    def take_all(self) -> list[T]:
        """Every waiting job, removed (at shutdown: they go back to the inbox)."""
        jobs = [job for _, _, job in self._heap]
        self._heap.clear()
        return jobs

    def __len__(self) -> int:
        return len(self._heap)

    # -- stuck files ------------------------------------------------------------------------------
    def progressed(self, location: str) -> None:
        """The file at ``location`` made a step that was not "stuck": whatever held it back
        is over, and a --once run no longer counts it as unfinished."""
        self._stuck.pop(location, None)
        self.unfinished.discard(location)

    def stuck(self, location: str) -> Optional[float]:
        """The file at ``location`` is stuck again: the delay before its next try, or None
        when a --once run must give it up now (it then stays counted as unfinished)."""
        now = self.mono()
        first, times = self._stuck.get(location, (now, 0))
        self._stuck[location] = (first, times + 1)
        delay = min(STUCK_MAX_DELAY, (1.0 + self.settle_seconds) * 2 ** min(times, 6))
        if not self.once:
            return delay
        self.unfinished.add(location)
        left = first + self.once_wait - now
        if left <= 0:
            self._stuck.pop(location, None)
            return None
        return min(delay, left)          # one last try before giving up, within the run
