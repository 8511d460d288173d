"""A full listing of the source, walked on a thread of its own and handed over in chunks.

A million-file inbox takes seconds to list and a 100,000-key prefix many round trips; the
runner must not wait for the end of either before it claims. :class:`Pass` runs
``store.scan()`` on a daemon thread and queues what it finds in chunks of ``CHUNK`` drops, at
most ``depth`` chunks ahead of the runner (the listing waits for the runner, so memory stays
bounded however long the listing), and the runner takes a few chunks each loop turn
(``take``). The pass ends with a marker: done, or the exception that stopped it (raised to
the runner from ``take``, which handles it as it handled a failed scan).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator, Optional

from pipeline.values import Drop

CHUNK = 500          # drops per hand-over
DEPTH = 4            # chunks the listing may run ahead of the runner (it then waits)
FLUSH_SECONDS = 0.2  # a part-filled chunk is handed over once this old (a slow listing)
_END = object()


class Pass:
    """One full listing of ``store`` (anything with ``scan()``), in progress."""

    def __init__(self, store, wake: Optional[queue.Queue] = None, depth: int = DEPTH):
        self._chunks: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._wake = wake
        self.finished = False
        self.failed = False               # ended by an exception: not a full listing
        self._thread = threading.Thread(target=self._run, args=(store,), name="scan", daemon=True)
        self._thread.start()

    def _run(self, store) -> None:
        chunk: list[Drop] = []
        since = time.monotonic()
        try:
            for drop in store.scan():
                chunk.append(drop)
                # full, or a slow listing's first finds held back long enough
                if len(chunk) >= CHUNK or time.monotonic() - since > FLUSH_SECONDS:
                    if not self._put(chunk):
                        return
                    chunk, since = [], time.monotonic()
            self._put(chunk)
            self._put(_END)
        except BaseException as exc:      # handed to the runner, which decides
            self._put(chunk)
            self._put(exc)

    def _put(self, item) -> bool:
        """Queue ``item`` unless the pass was stopped; wake the runner's loop."""
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.2)
            except queue.Full:
                continue
            if self._wake is not None:
                self._wake.put(("scanned",))
            return True
        return False

    def take(self, chunks: int) -> Iterator[Drop]:
        """What the listing has found since the last take, at most ``chunks`` chunks. Sets
        ``finished`` once the listing is over; raises what stopped it early."""
        for _ in range(chunks):
            if self.finished:
                return
            try:
                item = self._chunks.get_nowait()
            except queue.Empty:
                return
            if item is _END:
                self.finished = True
                return
            if isinstance(item, BaseException):
                self.finished = self.failed = True
                raise item
            yield from item

    def stop(self) -> None:
        """Abandon the listing (shutdown): its thread ends at its next hand-over."""
        self._stop.set()
