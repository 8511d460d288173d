"""settle: which inbox files are complete and ready to claim.

Events are hints, the listing is the truth: a full scan at start and
every ``rescan_seconds``, watchdog events as the fast path in between. A file is ready once
its size and mtime have not changed for ``settle_seconds``: either its mtime is that old, or
we have seen it unchanged for that long by our own clock (which also copes with a filesystem
whose clock is ahead of ours).

A backlog of a million files is a million entries here, so each costs as little as Python
allows: one small list per ready file (shared by the heap and the index by name, no
per-file object of a class), one tuple per file still settling. A scan is a *pass*: files
seen during it are stamped with the pass's number, and at its end whatever was not seen is
forgotten, without a set of every name present.
"""

from __future__ import annotations

import heapq
import time
from typing import Callable, Optional

from pipeline.values import Drop

# a ready entry: [mtime, name, size, pass]; the heap orders by mtime, then name. The pass
# number is kept below 256 (CPython shares those ints): it only has to tell the current pass
# from the one before.
_MTIME, _NAME, _SIZE, _PASS = 0, 1, 2, 3


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
        # name → (size, mtime, first seen unchanged (monotonic), pass)
        self._pending: dict[str, tuple[int, float, float, int]] = {}
        self._timers: list[tuple[float, str]] = []   # heap of (monotonic due time, name); lazy
        self._ready: list[list] = []                 # heap of ready entries; lazy
        self._queued: dict[str, list] = {}           # ready name → its live entry in _ready
        self._pass = 0
        # True while no file should be claimed, however settled (ordering: enough files parked
        # already); settled files then wait here, and the runner does not spin on them
        self.paused: Callable[[], bool] = lambda: False

    def observe(self, drop: Drop) -> None:
        """Note a sighting of ``drop`` (from a scan, an event, or a due timer)."""
        name = drop.name
        entry = self._queued.get(name)
        if entry is not None:
            entry[_PASS] = self._pass
            return
        seen = self._pending.get(name)
        if seen is None or (seen[0], seen[1]) != (drop.size, drop.mtime):
            since = self.mono()
        else:
            since = seen[2]
        wait = min(drop.mtime + self.settle - self.wall(), since + self.settle - self.mono())
        if wait <= 0:
            self._pending.pop(name, None)
            entry = [drop.mtime, name, drop.size, self._pass]
            heapq.heappush(self._ready, entry)
            self._queued[name] = entry
        else:
            self._pending[name] = (drop.size, drop.mtime, since, self._pass)
            heapq.heappush(self._timers, (self.mono() + wait, name))

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
            entry = heapq.heappop(self._ready)
            # an entry of a name forgotten (and perhaps settled again) since is stale: only
            # the name's latest settling counts, at its own place in the order
            if self._queued.get(entry[_NAME]) is entry:
                del self._queued[entry[_NAME]]
                return Drop(entry[_NAME], entry[_SIZE], entry[_MTIME])
        return None

    def has_ready(self) -> bool:
        return bool(self._queued) and not self.paused()

    def ready_count(self) -> int:
        return len(self._queued)

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

    # -- scans as passes ------------------------------------------------------------------------
    def begin_pass(self) -> None:
        """A full scan starts: what it does not observe is forgotten by :meth:`end_pass`."""
        self._pass = (self._pass + 1) % 256

    def end_pass(self) -> None:
        """The scan begun last has listed everything: forget what it did not see."""
        current = self._pass
        for name in [n for n, e in self._queued.items() if e[_PASS] != current]:
            del self._queued[name]
        for name in [n for n, s in self._pending.items() if s[3] != current]:
            del self._pending[name]
        if len(self._ready) > 2 * len(self._queued) + 1024:     # mostly stale entries: compact
            self._ready = [e for e in self._ready if self._queued.get(e[_NAME]) is e]
            heapq.heapify(self._ready)

