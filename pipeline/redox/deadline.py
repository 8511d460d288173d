"""A total deadline for each reply, enforced by closing its socket.

requests' (and the socket's) read timeout bounds each wait for *more* bytes, not the reply as a
whole: a server, proxy or load balancer that trickles one byte every few seconds keeps a worker
busy forever. An :class:`Exchange` is one request's state; once the request has been written and
the reply is awaited, :meth:`Watchdog.arm` gives it a deadline. One watchdog thread per transport
shuts the socket down when a deadline passes, which makes the blocked read fail at once; the
caller sees ``exchange.expired`` and reports the deadline rather than a lost connection.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Optional


class Exchange:
    """One request in flight. ``sent``: the request was written out and its reply awaited
    (so Redox may have it); ``expired``: the watchdog ended it at its deadline."""

    __slots__ = ("deadline", "sock", "sent", "expired", "done")

    def __init__(self) -> None:
        self.deadline = float("inf")
        self.sock: Optional[socket.socket] = None
        self.sent = False
        self.expired = False
        self.done = False

    def past_deadline(self) -> bool:
        return time.monotonic() >= self.deadline


class Watchdog:
    """Shuts down the socket of every armed exchange still running at its deadline.

    ``horizon``: the shortest deadline any arm will ask for (the transport's reply timeout);
    an idle watchdog sleeps that long, so arming never has to wake it. Its thread starts on
    the first arm and ends when nothing has been armed for a while.
    """

    def __init__(self, horizon: float):
        self.horizon = max(0.01, horizon)
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        self._wake_at = float("inf")
        self._running = False
        self._closed = False

    def arm(self, exchange: Exchange, sock: Optional[socket.socket], seconds: float) -> None:
        """From now on ``exchange`` must finish within ``seconds``, or ``sock`` is shut down."""
        deadline = time.monotonic() + seconds
        with self._cond:
            exchange.sock, exchange.sent, exchange.deadline = sock, True, deadline
            heapq.heappush(self._heap, (deadline, next(self._order), exchange))
            if not self._running and not self._closed:
                self._running = True
                threading.Thread(target=self._run, name="redox-deadlines", daemon=True).start()
            elif deadline < self._wake_at:
                self._cond.notify()

    def disarm(self, exchange: Exchange) -> None:
        """The exchange is over: its socket is never touched after this returns (the entry
        itself is dropped lazily, when it reaches the top of the heap)."""
        with self._cond:
            exchange.done = True
            exchange.sock = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            idle_since = time.monotonic()
            while not self._closed:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, exchange = heapq.heappop(self._heap)
                    if not exchange.done:
                        self._expire(exchange)
                if self._heap:
                    idle_since = now
                elif now - idle_since > 2 * self.horizon:
                    break                    # idle: the next arm starts a new thread
                self._wake_at = self._heap[0][0] if self._heap else now + self.horizon
                self._cond.wait(max(0.0, self._wake_at - now))
            self._running = False

    @staticmethod
    def _expire(exchange: Exchange) -> None:
        """Called with the lock held, so a disarm cannot slip in between."""
        exchange.expired = True
        sock, exchange.sock = exchange.sock, None
        if sock is None:
            return
        # socket.socket.shutdown, not the SSL socket's own (which also drops its TLS state,
        # under the feet of the thread reading): a shutdown wakes a blocked recv, a close
        # from another thread does not
        raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
        try:
            socket.socket.shutdown(raw, socket.SHUT_RDWR)
        except (OSError, TypeError):
            pass
