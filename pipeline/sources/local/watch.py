"""File events on a local inbox: the fast path of discovery (the only module importing watchdog).

Events are hints, the listing is the truth: a changed name is put on the runner's queue as
``("hint", name)`` and the runner looks at the file itself. Watchdog drops events on inotify
overflow and network filesystems send none, so the periodic rescan stays the safety net.
"""

from __future__ import annotations

import logging
import os
import queue

log = logging.getLogger("pipeline.discover")


class Watcher:
    """Watchdog on the inbox (with ``recursive``, its subfolders too), putting changed names
    (paths below the inbox, ``/``-separated) on ``hints``. Handlers only enqueue; names in
    hidden folders are not hinted (the runner would only reject them)."""

    def __init__(self, folder: str, hints: "queue.Queue", recursive: bool = False):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        folder = os.path.abspath(folder)

        def name_of(path) -> str | None:
            rel = os.path.relpath(os.fsdecode(path), folder)
            if rel.startswith("..") or rel == ".":
                return None
            parts = rel.split(os.sep)
            if len(parts) > 1 and (not recursive or any(p.startswith(".") for p in parts[:-1])):
                return None
            return "/".join(parts)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.is_directory:
                    return
                for path in (getattr(event, "dest_path", None), event.src_path):
                    name = name_of(path) if path else None
                    if name:
                        hints.put(("hint", name))

        self.observer = Observer()
        self.observer.schedule(Handler(), folder, recursive=recursive)

    def start(self) -> "Watcher":
        try:
            self.observer.start()
        except OSError as exc:   # e.g. inotify watch limit: the rescan still finds everything
            log.warning("file events unavailable; relying on periodic rescans", extra={"error": str(exc)})
        return self

    def stop(self) -> None:
        # Stopping races the emitter thread, which then logs a harmless "queue_events() called
        # when the thread is inactive" error: nothing after this point is news to an operator.
        logging.getLogger("watchdog").setLevel(logging.CRITICAL)
        try:
            self.observer.stop()
            self.observer.join(timeout=5)
        except RuntimeError:
            pass
