"""The limiter that keeps Redox requests under ``redox.max_requests_per_second``, per host.

Redox allows 7,500 requests per 5-minute window per IP (about 25/s) and counts every request:
SENDs, uploads, token requests and Platform API look-ups. Requests are spaced at 1/rate and,
as a second guard, never more than ``rate`` depart in any one-second window, so the busiest
second never exceeds the limit. A 429's Retry-After pauses everyone, for at most ``max_pause``
seconds: whatever a reply says, it cannot stop the pipeline for longer than the retry policy's
own longest wait; a caller with less ``patience`` is told so at once (:class:`Paused`) instead
of sleeping through it.

*Everyone* is every process of the host: the record of recent departures lives in a small file
beside the journal (sharedbucket.py, ratefile.py), so any number of services sharing a state
folder draw from one budget. This module decides who asks when: the threads of one process
take their turns in order (turns.py), and each asks the budget (ratebucket.py) whether it may
leave. With no limit (0) nothing is shared: a 429's pause then holds back this process only.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from typing import Any, Callable, Optional

from pipeline.errors import TransientDelivery
from pipeline.redox.ratebucket import Bucket, LocalBucket, Paused
from pipeline.redox.ratefile import host_clock, remove_stale_files
from pipeline.redox.replies import retry_after
from pipeline.redox.sharedbucket import SharedBucket
from pipeline.redox.turns import Turns


class RateLimiter:
    """``acquire()`` blocks the calling thread until it may send. ``per_second`` 0 = no limit;
    ``max_pause``: the longest :meth:`pause_for` holds everyone back (seconds); ``shared_path``:
    the file the host's processes share the budget through (None: this process alone).
    Threads are served in the order they asked."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_pause: float = 300.0,
                 shared_path: Optional[str] = None):
        self.per_second = per_second
        self.max_pause = max(0.0, max_pause)
        self.clock, self.sleep = clock, sleep
        self.shared_path = shared_path if per_second > 0 else None
        self._bucket: Bucket = LocalBucket(per_second, clock, self.max_pause)
        if self.shared_path:
            self._bucket = SharedBucket(self.shared_path, per_second, clock, self.max_pause)
        self._turns = Turns()
        _LIMITERS.add(self)

    @classmethod
    def for_host(cls, per_second: float, state_path: str, max_pause: float = 300.0) -> "RateLimiter":
        """The limiter every process of this host using the journal at ``state_path`` shares:
        its file sits beside the journal and is named for the boot whose clock it holds."""
        clock, tag = host_clock()
        path = f"{state_path}.ratelimit-{tag}"
        if per_second > 0:
            remove_stale_files(state_path, keep=path)
        return cls(per_second, clock=clock, max_pause=max_pause, shared_path=path)

    def acquire(self, patience: float = math.inf) -> float:
        """Wait until a request may leave now, and count it as leaving now. Returns the time
        this thread slept for the limit.

        ``patience``: the longest pause (:meth:`pause_for`) the caller will sit out; a longer
        one raises :class:`Paused` at once (the spacing of the rate limit is always waited for).

        What is counted are actual departures, not planned ones: a thread that wakes late
        must not let the next one leave early. MARGIN (ratebucket.py) absorbs the few milliseconds between
        leaving here and arriving at Redox.
        """
        waited = 0.0
        with self._turns:
            while True:
                wait = self._bucket.take(patience)
                if wait <= 0:
                    return waited
                self.sleep(wait)
                waited += wait

    def wait_turn(self, patience: float = math.inf) -> None:
        """:meth:`acquire` for a request about to be written: a pause longer than ``patience``
        is not sat out, and the request is then not sent (TransientDelivery, status 429, not
        seen, ``retry_after`` the pause left)."""
        try:
            self.acquire(patience=patience)
        except Paused as paused:
            raise TransientDelivery(
                "not sent: Redox answered HTTP 429 and asked every request to wait "
                f"(Retry-After), {paused.seconds:.0f} s more", status=429,
                retry_after=paused.seconds) from None

    def heard(self, status: int, headers: Any, cap: float) -> None:
        """A reply's word on everyone's rate: a 429 pauses every request for its Retry-After
        (at most ``cap``; 1 s when it gives none). A 503's Retry-After delays only that one
        request's retry (its error carries it), so only a 429 counts here."""
        if status == 429:
            wait = retry_after(headers, cap)
            self.pause_for(wait if wait is not None else 1.0)

    def departed(self, late_by: float) -> None:
        """The request this thread was last let go for leaves ``late_by`` seconds later than
        it was counted (something that must come first, such as recording the attempt, took
        longer than usual): count it so, and the busiest second of arrivals still holds at
        most the limit. A delay every request has shifts them all alike and costs nothing;
        only what varies must be counted."""
        if self.per_second > 0 and late_by > 0:
            self._bucket.restamp(late_by)

    def pause_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a 429 with Retry-After), clamped to
        [0, max_pause]; NaN pauses nobody. Shared: every process of the host waits."""
        if math.isnan(seconds):
            return
        self._bucket.hold_until(min(self.max_pause, max(0.0, seconds)))

    def _after_fork(self) -> None:
        self._turns = Turns()


_LIMITERS: "weakref.WeakSet[RateLimiter]" = weakref.WeakSet()


def _new_turns_after_fork() -> None:
    for limiter in list(_LIMITERS):
        limiter._after_fork()


os.register_at_fork(after_in_child=_new_turns_after_fork)


class LimitedTransport:
    """A transport whose every request waits for ``limiter`` (once connected, just before it
    is written, when the transport offers that moment), and whose 429 pauses
    everyone: for the requests that do not go through a BearerClient (token requests), which
    count against Redox's per-IP budget like any other. A pause longer than ``patience`` is not
    sat out: the request is not sent (TransientDelivery, status 429, not seen)."""

    def __init__(self, transport: Any, limiter: RateLimiter, patience: float = math.inf):
        self.transport, self.limiter, self.patience = transport, limiter, patience

    def request(self, method: str, url: str, **kw: Any) -> Any:
        if getattr(self.transport, "departs", False):      # counted once connected
            reply = self.transport.request(method, url, before_write=self._wait, **kw)
        else:
            self._wait()
            reply = self.transport.request(method, url, **kw)
        self.limiter.heard(reply.status, reply.headers, self.limiter.max_pause)
        return reply

    def _wait(self) -> None:
        self.limiter.wait_turn(self.patience)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
