"""A periodic count for ``run --once`` at a terminal: how many files have finished so far.

Only when stderr is a terminal (a cron log or a pipe gets the per-file lines and no more), at
most one line every ``interval`` seconds, and a last one at the end. It is a log line, so
``--log-format json`` keeps every line JSON.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Optional

log = logging.getLogger("pipeline.progress")


class Progress:
    """Call with the runner's counts after each step; ``finish(counts)`` once at the end."""

    def __init__(self, total: int, interval: float = 2.0,
                 mono: Callable[[], float] = time.monotonic):
        self.total, self.interval, self.mono = total, interval, mono
        self._last = mono()

    def __call__(self, counts: dict) -> None:
        now = self.mono()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(counts)

    def finish(self, counts: dict) -> None:
        self._emit(counts)

    def _emit(self, counts: dict) -> None:
        done, failed = counts.get("done", 0), counts.get("failed", 0)
        log.info(f"progress: {done + failed} of {self.total} finished ({done} done, {failed} failed)",
                 extra={"done": done, "failed": failed, "total": self.total})


def for_terminal(total: int, stream=None) -> Optional[Progress]:
    """A Progress when ``stream`` (stderr) is a terminal, else None."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Progress(total) if tty and total > 0 else None
