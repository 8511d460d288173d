"""A first-come, first-served lock for the threads of one process."""

from __future__ import annotations

import collections
import threading
from typing import Any


class Turns:
    """A first-come, first-served lock: the threads of one process take their turns in order
    (threading.Lock promises no order). The holder hands the turn straight to the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> None:
        with self._lock:
            if not self._busy:
                self._busy = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiting.append(gate)
        try:
            gate.acquire()                  # released when the turn is handed to us
        except BaseException:
            with self._lock:
                if gate in self._waiting:   # never got it: just leave the queue
                    self._waiting.remove(gate)
                    raise
            self.__exit__()                 # got it as we were interrupted: pass it on
            raise

    def __exit__(self, *_exc: Any) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._busy = False
