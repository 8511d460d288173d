"""discover: which inbox files are complete and ready to claim (the only module importing watchdog).

Events are hints, the listing is the truth (design.md: discover): a full scan at start and
every ``rescan_seconds``, watchdog events as the fast path in between. A file is ready once
its size and mtime have not changed for ``settle_seconds``: either its mtime is that old, or
we have seen it unchanged for that long by our own clock (which also copes with a filesystem
whose clock is ahead of ours).
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from pipeline.values import Drop

log = logging.getLogger("pipeline.discover")


@dataclass
class _Seen:
    size: int
    mtime: float
    since: float          # monotonic time we first saw it with this size and mtime


class Settler:
    """Tracks candidates until they have settled; hands out ready ones oldest first."""

    def __init__(self, settle_seconds: float, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic):
        self.settle, self.wall, self.mono = settle_seconds, wall, mono
        self._seen: dict[str, _Seen] = {}
        self._ready: list[tuple[float, str]] = []     # heap of (mtime, name)
        self._queued: set[str] = set()

    def observe(self, drop: Drop) -> None:
        """Note a sighting of ``drop`` (from a scan or an event)."""
        if drop.name in self._queued:
            return
        seen = self._seen.get(drop.name)
        if seen is None or (seen.size, seen.mtime) != (drop.size, drop.mtime):
            seen = self._seen[drop.name] = _Seen(drop.size, drop.mtime, self.mono())
        if self._settled(seen):
            heapq.heappush(self._ready, (drop.mtime, drop.name))
            self._queued.add(drop.name)

    def _settled(self, seen: _Seen) -> bool:
        return (self.wall() - seen.mtime >= self.settle) or (self.mono() - seen.since >= self.settle)

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)
        self._queued.discard(name)

    def pop_ready(self) -> Optional[str]:
        """The oldest ready name, or None. Its entry is forgotten: a claim follows."""
        drop = self.pop_settled()
        return drop.name if drop else None

    def pop_settled(self) -> Optional[Drop]:
        """Like pop_ready, with the size and mtime it settled at: the claimer compares them with
        the file as it is now (it may have waited for a free worker while being rewritten)."""
        while self._ready:
            _, name = heapq.heappop(self._ready)
            seen = self._seen.get(name)
            if name in self._queued and seen is not None:
                self.forget(name)
                return Drop(name, seen.size, seen.mtime)
        return None

    def has_ready(self) -> bool:
        return any(name in self._queued for _, name in self._ready[:1]) or bool(self._queued)

    def unsettled(self) -> list[str]:
        return [n for n in self._seen if n not in self._queued]

    def next_check(self) -> Optional[float]:
        """Seconds until the earliest unsettled candidate could be ready, or None."""
        waits = []
        now_wall, now_mono = self.wall(), self.mono()
        for name, seen in self._seen.items():
            if name not in self._queued:
                waits.append(max(0.0, min(seen.mtime + self.settle - now_wall,
                                          seen.since + self.settle - now_mono)))
        return min(waits) if waits else None

    def drop_missing(self, present: set[str]) -> None:
        """After a full scan: forget what is no longer in the inbox."""
        for name in [n for n in self._seen if n not in present]:
            self.forget(name)


class Watcher:
    """Watchdog on the inbox, putting changed names on ``hints``. Handlers only enqueue."""

    def __init__(self, folder: str, hints: "queue.Queue"):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        folder = os.path.abspath(folder)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.is_directory:
                    return
                for path in (getattr(event, "dest_path", None), event.src_path):
                    if path and os.path.dirname(os.fsdecode(path)) == folder:
                        hints.put(("hint", os.path.basename(os.fsdecode(path))))

        self.observer = Observer()
        self.observer.schedule(Handler(), folder, recursive=False)

    def start(self) -> "Watcher":
        try:
            self.observer.start()
        except OSError as exc:   # e.g. inotify watch limit: the rescan still finds everything
            log.warning("file events unavailable; relying on periodic rescans", extra={"error": str(exc)})
        return self

    def stop(self) -> None:
        try:
            self.observer.stop()
            self.observer.join(timeout=5)
        except RuntimeError:
            pass
