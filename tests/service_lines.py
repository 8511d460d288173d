"""Test helper: read a running service's stderr line by line while it runs.

`Lines(proc.stderr)` pumps lines in a thread (so the child never blocks on a full pipe);
`.wait_json(pred)` returns the first JSON line matching `pred`; `.all()` everything so far.
"""

from __future__ import annotations

import json
import threading
import time


class Lines:
    def __init__(self, stream):
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_json(self, predicate, timeout: float = 30.0) -> dict:
        """The first line that parses as JSON and satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue
                    if predicate(doc):
                        return doc
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching line within {timeout}s: {self._lines[-5:]}")
                self._cond.wait(left)

    def all(self, join_timeout: float = 10.0) -> list[str]:
        """Every line; call after the process ended to get them all."""
        self._thread.join(join_timeout)
        with self._cond:
            return list(self._lines)
