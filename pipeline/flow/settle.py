"""settle: which inbox files are complete and ready to claim.

Events are hints, the listing is the truth: a full scan at start and
every ``rescan_seconds``, watchdog events as the fast path in between. A file is ready once
its size and mtime have not changed for ``settle_seconds``: either its mtime is that old, or
we have seen it unchanged for that long by our own clock (which also copes with a filesystem
whose clock is ahead of ours).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import Callable, Optional

from pipeline.values import Drop


@dataclass
class _Seen:
    size: int
    mtime: float
    since: float          # monotonic time we first saw it with this size and mtime


class Settler:
    """Tracks candidates until they have settled; hands out ready ones oldest first.

    Every operation is O(log n) in the number of candidates, so a backlog of tens of
    thousands of files costs one listing, not a scan per file. A candidate that is not settled
    yet sits in a timer heap; when its time comes (``due()``) the runner looks at the file
    again and observes it anew, so readiness never waits for the next full rescan.
    """

    def __init__(self, settle_seconds: float, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic):
        self.settle, self.wall, self.mono = settle_seconds, wall, mono
        self._pending: dict[str, _Seen] = {}
        self._timers: list[tuple[float, str]] = []   # heap of (monotonic due time, name); lazy
        self._ready: list[tuple[float, str, int]] = []    # heap of (mtime, name, size); lazy
        self._queued: dict[str, tuple[float, int]] = {}    # ready name → the (mtime, size) it settled at
        # True while no file should be claimed, however settled (ordering: enough files parked
        # already); settled files then wait here, and the runner does not spin on them
        self.paused: Callable[[], bool] = lambda: False

    def observe(self, drop: Drop) -> None:
        """Note a sighting of ``drop`` (from a scan, an event, or a due timer)."""
        if drop.name in self._queued:
            return
        seen = self._pending.get(drop.name)
        if seen is None or (seen.size, seen.mtime) != (drop.size, drop.mtime):
            seen = self._pending[drop.name] = _Seen(drop.size, drop.mtime, self.mono())
        wait = self._wait(seen)
        if wait <= 0:
            del self._pending[drop.name]
            heapq.heappush(self._ready, (drop.mtime, drop.name, drop.size))
            self._queued[drop.name] = (drop.mtime, drop.size)
        else:
            heapq.heappush(self._timers, (self.mono() + wait, drop.name))

    def _wait(self, seen: _Seen) -> float:
        """Seconds until ``seen`` has been unchanged for settle_seconds (<= 0: it has)."""
        return min(seen.mtime + self.settle - self.wall(), seen.since + self.settle - self.mono())

    def due(self) -> list[str]:
        """Names whose settle time has come: the caller looks at each again and observes it."""
        now, names = self.mono(), []
        while self._timers and self._timers[0][0] <= now:
            _, name = heapq.heappop(self._timers)
            if name in self._pending and name not in names:
                names.append(name)
        return names

    def forget(self, name: str) -> None:
        self._pending.pop(name, None)
        self._queued.pop(name, None)

    def pop_ready(self) -> Optional[str]:
        """The oldest ready name, or None. It is forgotten: a claim follows."""
        drop = self.pop_settled()
        return drop.name if drop else None

    def pop_settled(self) -> Optional[Drop]:
        """Like pop_ready, with the size and mtime it settled at: the claimer compares them with
        the file as it is now (it may have waited for a free worker while being rewritten).
        None while paused."""
        if self.paused():
            return None
        while self._ready:
            mtime, name, size = heapq.heappop(self._ready)
            # an entry of a name forgotten and settled again since is stale: only the
            # name's latest settling counts, at its own place in the order
            if self._queued.get(name) == (mtime, size):
                del self._queued[name]
                return Drop(name, size, mtime)
        return None

    def has_ready(self) -> bool:
        return bool(self._queued) and not self.paused()

    def pending_count(self) -> int:
        """Candidates seen but not settled yet."""
        return len(self._pending)

    def known(self) -> set[str]:
        return set(self._pending) | set(self._queued)

    def next_check(self) -> Optional[float]:
        """Seconds until the earliest timer, or None."""
        while self._timers and self._timers[0][1] not in self._pending:
            heapq.heappop(self._timers)          # stale: settled or forgotten since
        return max(0.0, self._timers[0][0] - self.mono()) if self._timers else None

    def drop_missing(self, present: set[str]) -> None:
        """After a full scan: forget what is no longer in the inbox."""
        for name in [n for n in self.known() if n not in present]:
            self.forget(name)
