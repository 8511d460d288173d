"""parking: the runner's Schedule, plus files waiting for their turn in their key's sequence.

A file that ordering holds back (a ``wait`` step) is *parked*: it keeps its claim, holds no
worker, and is handed back to the runner when it should ask again. Parked files are grouped by
key and only the oldest of each key asks (no other can be next): after its ``delay``, or at once
when a file of the key finished here or a file being read here got its key (``wake``, from a
worker thread). The others of the key follow it, one at a time. Everything the runner asks of a
Schedule (due, next_in, any_due_within, take_all, len) covers parked files too, so shutdown
releases them and ``--once`` waits for them like for retries.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Callable, Iterator, Optional, Protocol, TypeVar

from pipeline.flow.addressing import Routed
from pipeline.flow.board import place_of
from pipeline.flow.schedule import Schedule
from pipeline.values import Claim


class Parkable(Protocol):
    """What a parked job is (the runner's Job): its claim, and its route with its key."""
    claim: Claim
    route: Optional[Routed]


T = TypeVar("T", bound=Parkable)
FOLLOW = 2.0        # seconds before the next of a key asks when the oldest did not come back


class ParkingSchedule(Schedule[T]):
    """A Schedule whose jobs may also be ``park``-ed (jobs have ``claim`` and ``route``)."""

    def __init__(self, mono: Callable[[], float], *, once: bool, once_wait: float,
                 settle_seconds: float, sequencer=None):
        super().__init__(mono, once=once, once_wait=once_wait, settle_seconds=settle_seconds)
        self._parked: dict[str, list[tuple[str, int, T]]] = {}   # key → heap by drop order
        self._due: dict[str, float] = {}                          # key → when its oldest asks
        self._order = itertools.count()
        self._woken: set[Optional[str]] = set()
        self._lock = threading.Lock()
        if sequencer is not None:
            sequencer.parking = self

    @classmethod
    def of(cls, work, mono: Callable[[], float], **kwargs) -> "ParkingSchedule":
        """The schedule for a runner of ``work`` (a FileWork: its ordering, if any, attached)."""
        return cls(mono, sequencer=work.routing.sequencer, **kwargs)

    def park(self, job: T, delay: float) -> None:
        """``job`` waits for its turn; its key's oldest parked file asks again after ``delay``."""
        key = _route(job).key or ""
        heap = self._parked.setdefault(key, [])
        place = place_of(job.claim.name, job.claim.mtime)
        heapq.heappush(heap, (place, next(self._order), job))
        if heap[0][2] is job or key not in self._due:
            self._due[key] = self.mono() + max(0.0, delay)

    def wake(self, key: Optional[str]) -> None:
        """Thread-safe: a file of ``key`` moved on (None: a file being read got its key)."""
        with self._lock:
            self._woken.add(key)

    def waiting(self) -> int:
        """Parked files that wait for a file being read or sent (not for a hold)."""
        return sum(len(heap) for heap in self._parked.values()
                   if heap and _route(heap[0][2]).waiting_for != "hold")

    # -- the Schedule interface, parked files included -----------------------------------
    def due(self) -> Iterator[T]:
        yield from super().due()
        self._apply_wakes()
        now = self.mono()
        for key in [k for k, when in self._due.items() if when <= now]:
            heap = self._parked[key]
            _, _, job = heapq.heappop(heap)
            if heap:
                self._due[key] = now + FOLLOW
            else:
                del self._parked[key], self._due[key]
            yield job

    def _apply_wakes(self) -> None:
        with self._lock:
            woken, self._woken = self._woken, set()
        if not woken:
            return
        now = self.mono()
        for key, heap in self._parked.items():
            if key in woken or (None in woken and _route(heap[0][2]).waiting_for == "mark"):
                self._due[key] = min(self._due[key], now)

    def next_in(self) -> Optional[float]:
        soonest = [t for t in (super().next_in(),) if t is not None]
        if self._due:
            soonest.append(min(self._due.values()) - self.mono())
        with self._lock:
            if self._woken:
                soonest.append(0.0)
        return min(soonest) if soonest else None

    def any_due_within(self, seconds: float) -> bool:
        horizon = self.mono() + seconds
        return super().any_due_within(seconds) or any(when <= horizon for when in self._due.values())

    def take_all(self) -> list[T]:
        jobs = super().take_all() + [job for heap in self._parked.values() for _, _, job in heap]
        self._parked.clear()
        self._due.clear()
        return jobs

    def __len__(self) -> int:
        return super().__len__() + sum(len(heap) for heap in self._parked.values())


def _route(job: Parkable) -> Routed:
    assert job.route is not None, "only a file whose key is known is ever parked"
    return job.route
