"""A pass of work at start and then every so often, on a thread of its own (the service's
background prune and reconcile passes). ``stop()`` sets the event the thread waits on, so a
stop never waits out an interval."""

from __future__ import annotations

import threading
from typing import Optional


class Periodic:
    """Subclasses say what a pass is (:meth:`one_pass`); this runs one at ``start()`` and then
    one every ``interval`` seconds until ``stop()``. ``stop_event`` may be shared with the work
    itself, so that a pass also ends at its next step."""

    name = "periodic"

    def __init__(self, interval: float, stop_event: Optional[threading.Event] = None):
        self.interval = interval
        self._stop = stop_event or threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self.passes = 0

    def one_pass(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout: float) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; True when it has ended."""
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.one_pass()
            self._stop.wait(self.interval)
