"""How many files to keep in flight: enough to send at the rate limit at Redox's own latency.

Little's law: sending ``rate`` requests a second that each take ``latency`` seconds keeps
``rate × latency`` of them in flight. A fixed pool of four covers 20/s only while a SEND takes
under 0.2 s; at 250 ms it drains at 16/s, at 1 s at 4/s. With ``workers: auto`` the
:class:`Concurrency` controller aims at

    in flight = ceil(rate × latency × headroom) + spare        (headroom 1.25, spare 1)

where *latency* is a moving average of the SEND latencies Redox shows (the HTTP exchange only:
a wait for the rate limiter must not count, or more files in flight would look like a slower
Redox and ask for more files still), plus the time the storage holds each file in flight
besides (claiming it, reading it, finishing it: S3 round trips; next to nothing for local
folders), also a moving average, bounded by a floor (2) and a ceiling (64). On top of that
target sits an AIMD window, as TCP's congestion control: a 429, a 5xx or a request with no
answer halves it (once per batch of requests already in flight: their failures are the same
event), and each answered request grows it again by 1/window, about one more file per round
of answers, until the latency target is back in charge. The rate limiter still decides when
each request leaves; the controller only decides how many files wait their turn, so no more
files than needed sit with an attempt recorded and no answer yet.

A number in ``workers`` is a fixed cap (the controller then always answers that number), and so
is ``auto`` with no rate limit (``max_requests_per_second: 0``): there is no rate to aim at,
and it answers its ceiling. Pure: no clock, no threads of its own; thread-safe, since answers
arrive on worker threads while the runner asks for the target on its loop.
"""

from __future__ import annotations

import enum
import math
import threading
from typing import Literal, Optional, Union

from pipeline.config.models import AUTO_WORKERS_CEILING as AUTO_CEILING


class Outcome(enum.Enum):
    """What one request's answer says about Redox's load."""
    ANSWERED = "answered"     # any reply about the request itself: 2xx, 400, 403, 404, 413 ...
    THROTTLED = "throttled"   # 429: too many requests
    FAILED = "failed"         # 5xx, 408, a timeout, a dropped connection: Redox struggles


def outcome_of(status: Optional[int]) -> Outcome:
    """The Outcome of an HTTP status (None: no answer at all)."""
    if status is None or status == 408 or status >= 500:
        return Outcome.FAILED
    if status == 429:
        return Outcome.THROTTLED
    return Outcome.ANSWERED


class Concurrency:
    """``observe(latency, outcome)`` for every answer; ``target()`` files in flight.

    ``per_second``: the rate limit to reach (0: none, a fixed cap). ``ceiling``: the most in
    flight (thread pools must be sized for it); ``fixed``: always answer ``ceiling``. ``floor``:
    the fewest (at most the ceiling). ``initial_latency``: assumed until the first answer.
    ``smoothing``: the weight of a new latency in the average; a sample counts at most
    ``4 ×`` the current average, so one stalled request cannot send the target to the ceiling.
    ``decrease``: what a congestion signal multiplies the window by.
    """

    def __init__(self, per_second: float, *, ceiling: int = AUTO_CEILING, fixed: bool = False,
                 floor: int = 2, headroom: float = 1.25, spare: int = 1,
                 initial_latency: float = 0.25, smoothing: float = 0.1, decrease: float = 0.5):
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.per_second = max(0.0, per_second)
        self.ceiling = ceiling
        self.fixed = fixed or self.per_second == 0
        self.floor = max(1, min(floor, ceiling))
        self.headroom, self.spare = headroom, spare
        self.smoothing, self.decrease = smoothing, decrease
        self._latency = initial_latency
        self._measured = False
        self._storage: dict[str, float] = {}   # kind of storage work → its moving average
        self._window = float(ceiling)     # no congestion seen: the latency target decides
        self._grace = 0                   # answers still due from before the last decrease
        self._lock = threading.Lock()

    @classmethod
    def for_workers(cls, workers: Union[Literal["auto"], int], per_second: float) -> "Concurrency":
        """The controller for the ``workers`` setting: ``auto`` adapts up to AUTO_CEILING, a
        number is a fixed cap."""
        if workers == "auto":
            return cls(per_second)
        return cls(per_second, ceiling=workers, fixed=True)

    # -- what the runner asks ----------------------------------------------------------------------
    def target(self) -> int:
        """How many files to keep in flight now."""
        with self._lock:
            return self._target()

    @property
    def latency(self) -> float:
        """The latency the target is based on (seconds): the moving average of answers."""
        with self._lock:
            return self._latency

    # -- what answers tell it -----------------------------------------------------------------------
    def observe(self, latency_seconds: Optional[float], outcome: Outcome) -> None:
        """One request's answer: how long Redox took (None when unknown; only answered
        requests' latencies count) and what it said."""
        with self._lock:
            after_decrease = self._grace > 0
            if after_decrease:
                self._grace -= 1
            if outcome is Outcome.ANSWERED:
                self._learn(latency_seconds)
                if not self.fixed and self._window < self.ceiling:
                    self._window = min(float(self.ceiling), self._window + 1.0 / max(1.0, self._window))
            elif not self.fixed and not after_decrease:
                current = self._target()
                self._window = max(float(self.floor), current * self.decrease)
                # the others that were in flight with this one answer the same event
                self._grace = current - 1

    def observe_storage(self, seconds: float, kind: str = "step") -> None:
        """A file spent ``seconds`` with the storage while in flight (``kind``: "claim", or
        "step" for reading and finishing): it holds a place in flight as a SEND does."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        with self._lock:
            old = self._storage.get(kind)
            self._storage[kind] = seconds if old is None else old + self.smoothing * (seconds - old)

    def observe_reply(self, status: Optional[int], elapsed: Optional[float]) -> None:
        """``observe`` from an HTTP status (None: no answer) and the exchange's duration; the
        shape of the metrics hook's ``observe("send", status=..., elapsed=...)``."""
        self.observe(elapsed, outcome_of(status))

    def _learn(self, latency: Optional[float]) -> None:
        if latency is None or not math.isfinite(latency) or latency < 0:
            return
        if not self._measured:
            self._latency, self._measured = latency, True
            return
        sample = min(latency, 4 * self._latency) if self._latency > 0 else latency
        self._latency += self.smoothing * (sample - self._latency)

    def _target(self) -> int:
        if self.fixed:
            return self.ceiling
        held = self._latency + sum(self._storage.values())
        want = math.ceil(self.per_second * held * self.headroom - 1e-9) + self.spare
        return max(self.floor, min(self.ceiling, want, math.floor(self._window)))
